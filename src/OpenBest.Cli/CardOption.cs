using System.CommandLine;
using OpenBest.Card;

namespace OpenBest.Cli;

/// <summary>The <c>--card</c> option of device commands: a card reader specification (see <see cref="CardReader"/>).</summary>
internal static class CardOption
{
    public static Option<string> Create(string description)
    {
        var option = new Option<string>("--card") { Description = description, HelpName = "pcsc[:READER]|at:DEVICE" };
        option.Validators.Add(r =>
        {
            if (!CardReader.IsValid(r.GetValueOrDefault<string>(), out var error))
            {
                r.AddError($"--card: {error}");
            }
        });
        return option;
    }

    /// <summary>Opens the card's USIM; a reader or card that is not there is one line naming it (exit 2).</summary>
    public static CardUsim Open(string spec)
    {
        try
        {
            return new CardUsim(CardReader.Open(spec));
        }
        catch (IOException e)
        {
            throw new CommandLineException($"--card {spec}: {e.Message}");
        }
    }
}
