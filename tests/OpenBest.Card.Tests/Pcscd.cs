using OpenBest.Obf.Demo;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// A real pcscd, started in the foreground as a child of the tests (<see cref="PcscdHost"/>) with one vsmartcard vpcd reader of
/// its own on a free port, which <c>best card</c> connects to. pcscd has one socket per machine (/run/pcscd), so every test
/// that uses it is in the "pcscd" collection. Where pcscd or vpcd is not installed the tests are skipped, except in CI
/// (CI=true), where that is a failure: .ci/run installs them.
/// </summary>
public sealed class Pcscd : IAsyncLifetime
{
    private PcscdHost? _host;

    /// <summary>The reader cards are inserted into (pcscd's name for the vpcd entry's first slot).</summary>
    public string Reader => _host?.Slots[0].Reader ?? string.Empty;

    /// <summary>The reader as <c>--card pcsc:READER</c> names it.</summary>
    public string ReaderName => Reader;

    /// <summary>The TCP port vpcd waits for the card on.</summary>
    public int Port => _host?.Slots[0].Port ?? 0;

    /// <summary>pcscd's output, for failure messages.</summary>
    public string Log => _host?.Log ?? string.Empty;

    /// <summary>Skips (or, in CI, fails) a test where pcscd cannot run.</summary>
    public static void Require()
    {
        if (PcscdHost.Installed)
        {
            return;
        }

        const string Missing = "pcscd and vsmartcard-vpcd are not installed (Debian: apt install pcscd vsmartcard-vpcd pcsc-tools opensc)";
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            Assert.Fail(Missing);
        }

        Assert.Skip(Missing);
    }

    /// <summary>
    /// Waits until a card in the test reader answers a SELECT of the MF through PC/SC (pcscd polls the reader, so an inserted
    /// card shows a little later).
    /// </summary>
    public Task WaitForCardAsync() => Eventually.True(CardAnswers, $"a card in {Reader} ({Log})");

    /// <summary>Waits until pcscd has seen the previous card leave the reader, so the next one is not mistaken for it.</summary>
    public Task WaitForNoCardAsync() => Eventually.True(() =>
    {
        try
        {
            using var channel = PcscChannel.Connect(Reader);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }, $"the reader {Reader} to be empty ({Log})");

    public async ValueTask InitializeAsync()
    {
        if (PcscdHost.Installed)
        {
            await StartAsync(); // each test calls Require()
        }
    }

    /// <summary>Stops this pcscd for a test that starts its own (the demo).</summary>
    public Task StopAsync()
    {
        _host?.Dispose();
        _host = null;
        return Eventually.True(() => !PcscdHost.Running, "pcscd to stop");
    }

    /// <summary>Starts this pcscd (again).</summary>
    public async Task StartAsync() => _host = await PcscdHost.StartAsync(1, TestContext.Current.CancellationToken);

    public ValueTask DisposeAsync()
    {
        _host?.Dispose();
        return ValueTask.CompletedTask;
    }

    private bool CardAnswers()
    {
        using var channel = PcscdHost.TryConnect(Reader);
        return channel is not null;
    }
}

[CollectionDefinition("pcscd")]
public sealed class PcscdGroup : ICollectionFixture<Pcscd>;
