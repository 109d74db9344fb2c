using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using OpenBest.Crypto;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary><c>best subscriber</c>: provision the HSE's subscribers (K and OPc are stored encrypted and never printed).</summary>
internal static class SubscriberCommand
{
    public static Option<string> DataDirOption() => new("--data-dir")
    {
        Description = "the data folder (database, master key); $BEST_DATA_DIR when set",
        HelpName = "DIR",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BEST_DATA_DIR") is { Length: > 0 } dir ? dir : "openbest-data",
    };

    public static Command Create()
    {
        var command = new Command("subscriber", "Add, import, list and remove the HSE's subscribers (SQLite in the data folder; K and OPc encrypted at rest).");
        command.Subcommands.Add(CreateAdd());
        command.Subcommands.Add(CreateImport());
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateRemove());
        command.Subcommands.Add(CreateExternalId());
        command.Subcommands.Add(CreatePolicy());
        return command;
    }

    private static Command CreateExternalId()
    {
        var dataDir = DataDirOption();
        var imsi = ImsiOption();
        var eas = new Option<string>("--eas") { Description = "the EAS Id (the enterprise) the identifier is for", HelpName = "ID" };
        var id = new Option<string>("--id") { Description = "the UE's identifier for that enterprise (never the IMSI), e.g. meter-7@acme", HelpName = "EXTERNAL" };
        id.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: > 0 and <= 253 } v || v.Any(c => char.IsWhiteSpace(c) || c == '#')) { r.AddError("--id must be 1..253 characters without spaces or #"); } });
        var command = new Command("external-id", "Give a subscriber an external identifier for one EAS: what the EAS knows the device by (PSK identity <external id>#<key identifier>).");
        foreach (var option in new Option[] { imsi, eas, id, dataDir, Postgres })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r => HexOption.Require(r, imsi, eas, id));
        command.SetAction(result => WithStore(result.GetValue(dataDir)!, result, store =>
        {
            if (store.SeqHe(result.GetValue(imsi)!) is null)
            {
                result.InvocationConfiguration.Error.WriteLine($"best subscriber external-id: no subscriber {result.GetValue(imsi)}");
                return ExitCodes.CheckFailed;
            }

            ((IHseStateStore)store).SetExternalId(result.GetValue(eas)!, result.GetValue(id)!, result.GetValue(imsi)!);
            result.InvocationConfiguration.Output.WriteLine($"{result.GetValue(imsi)} is {result.GetValue(id)} for {result.GetValue(eas)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command CreatePolicy()
    {
        var dataDir = DataDirOption();
        var imsi = new Option<string>("--imsi") { Description = "the subscriber whose services to set", HelpName = "DIGITS" };
        var eas = new Option<string>("--eas") { Description = "the EAS whose services to set", HelpName = "ID" };
        var services = new Option<string>("--services") { Description = "comma separated: integrity, confidential, key-agreement-only, none; or 'any' to remove the limit", HelpName = "LIST" };
        services.Validators.Add(r =>
        {
            var text = r.GetValueOrDefault<string>() ?? string.Empty;
            try
            {
                if (text != "any")
                {
                    ServicePolicy.Parse(text);
                }
            }
            catch (FormatException e)
            {
                r.AddError($"--services: {e.Message}");
            }
        });
        var command = new Command("policy", "Set the services a subscriber (--imsi) or an EAS (--eas) may use; a session needs both to allow its service (cause 0x10 otherwise).");
        foreach (var option in new Option[] { imsi, eas, services, dataDir, Postgres })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r =>
        {
            if ((r.GetResult(imsi) is null) == (r.GetResult(eas) is null))
            {
                r.AddError("give exactly one of --imsi and --eas");
            }

            HexOption.Require(r, services);
        });
        command.SetAction(result => WithStore(result.GetValue(dataDir)!, result, store =>
        {
            var state = (IHseStateStore)store;
            var text = result.GetValue(services)!;
            int? mask = text == "any" ? null : ServicePolicy.Parse(text);
            if (result.GetValue(imsi) is { } subscriber)
            {
                if (!state.SetSubscriberServices(subscriber, mask))
                {
                    result.InvocationConfiguration.Error.WriteLine($"best subscriber policy: no subscriber {subscriber}");
                    return ExitCodes.CheckFailed;
                }
            }
            else
            {
                state.SetEasServices(result.GetValue(eas)!, mask);
            }

            result.InvocationConfiguration.Output.WriteLine($"{result.GetValue(imsi) ?? result.GetValue(eas)}: {ServicePolicy.Describe(mask)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Option<string> ImsiOption()
    {
        var imsi = new Option<string>("--imsi") { Description = "the IMSI, 6..15 digits", HelpName = "DIGITS" };
        imsi.Validators.Add(r =>
        {
            if (!IsImsi(r.GetValueOrDefault<string>()))
            {
                r.AddError("--imsi must be 6..15 decimal digits");
            }
        });
        return imsi;
    }

    private static Command CreateAdd()
    {
        var dataDir = DataDirOption();
        var imsi = ImsiOption();
        var k = HexOption.Create("--k", 16, "the subscriber key K");
        var opc = HexOption.Create("--opc", 16, "OPc (or --op)");
        var op = HexOption.Create("--op", 16, "OP, from which OPc is computed (or --opc)");
        var amf = HexOption.Create("--amf", 2, "the AMF of its vectors (default 8000)");
        var command = new Command("add", "Add one subscriber.");
        foreach (var option in new Option[] { imsi, k, opc, op, amf, dataDir, Postgres })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r =>
        {
            HexOption.Require(r, imsi, k);
            if ((r.GetResult(opc) is null) == (r.GetResult(op) is null))
            {
                r.AddError("give exactly one of --opc and --op (32 hex digits, 16 octets)");
            }
        });
        command.SetAction(result =>
        {
            var opcValue = result.GetResult(opc) is not null ? result.GetValue(opc)! : ComputeOpc(result.GetValue(k)!, result.GetValue(op)!);
            var amfValue = result.GetResult(amf) is null ? (ushort)0x8000 : (ushort)((result.GetValue(amf)![0] << 8) | result.GetValue(amf)![1]);
            return WithStore(result.GetValue(dataDir)!, result, store =>
            {
                store.Add([new NewSubscriber(result.GetValue(imsi)!, result.GetValue(k)!, opcValue, amfValue)]);
                result.InvocationConfiguration.Output.WriteLine($"added {result.GetValue(imsi)}");
                return ExitCodes.Success;
            });
        });
        return command;
    }

    private static Command CreateImport()
    {
        var dataDir = DataDirOption();
        var file = new Argument<FileInfo>("FILE") { Description = "a CSV file (header imsi,k,opc or imsi,k,op, optional amf column) or a JSON array of {imsi, k, opc|op, amf}" };
        var command = new Command("import", "Import subscribers from CSV or JSON: every bad row is reported with its line number, and nothing of a bad file is imported.");
        command.Arguments.Add(file);
        command.Options.Add(dataDir);
        command.Options.Add(Postgres);
        command.SetAction(result =>
        {
            var path = result.GetValue(file)!;
            var error = result.InvocationConfiguration.Error;
            if (!path.Exists)
            {
                error.WriteLine($"best subscriber import: {path.FullName}: no such file");
                return ExitCodes.BadInput;
            }

            var (rows, problems) = path.Extension.Equals(".json", StringComparison.OrdinalIgnoreCase) ? ReadJson(path) : ReadCsv(path);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (line, subscriber) in rows)
            {
                if (!seen.Add(subscriber.Imsi))
                {
                    problems.Add((line, $"IMSI {subscriber.Imsi} appears twice in the file"));
                }
            }

            if (problems.Count > 0)
            {
                foreach (var (line, problem) in problems.OrderBy(p => p.Line))
                {
                    error.WriteLine($"{path.Name}:{line}: {problem}");
                }

                error.WriteLine($"best subscriber import: {problems.Count} bad row(s) in {path.Name}; nothing was imported");
                return ExitCodes.BadInput;
            }

            return WithStore(result.GetValue(dataDir)!, result, store =>
            {
                store.Add([.. rows.Select(r => r.Subscriber)]);
                result.InvocationConfiguration.Output.WriteLine($"imported {rows.Count} subscriber(s)");
                return ExitCodes.Success;
            });
        });
        return command;
    }

    private static Command CreateList()
    {
        var dataDir = DataDirOption();
        var command = new Command("list", "List subscribers: IMSI, AMF and SEQ_HE (never K or OPc).");
        command.Options.Add(dataDir);
        command.Options.Add(Postgres);
        command.SetAction(result => WithStore(result.GetValue(dataDir)!, result, store =>
        {
            var output = result.InvocationConfiguration.Output;
            output.WriteLine($"{"IMSI",-16} {"AMF",-5} {"SEQ_HE",10}");
            foreach (var s in store.List())
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s.Imsi,-16} {s.Amf:x4}  {s.SeqHe,10}"));
            }

            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command CreateRemove()
    {
        var dataDir = DataDirOption();
        var imsi = ImsiOption();
        var command = new Command("remove", "Remove one subscriber.");
        command.Options.Add(imsi);
        command.Options.Add(dataDir);
        command.Options.Add(Postgres);
        command.Validators.Add(r => HexOption.Require(r, imsi));
        command.SetAction(result => WithStore(result.GetValue(dataDir)!, result, store =>
        {
            if (!store.Remove(result.GetValue(imsi)!))
            {
                result.InvocationConfiguration.Error.WriteLine($"best subscriber remove: no subscriber {result.GetValue(imsi)}");
                return ExitCodes.CheckFailed;
            }

            result.InvocationConfiguration.Output.WriteLine($"removed {result.GetValue(imsi)}");
            return ExitCodes.Success;
        }));
        return command;
    }

    private static readonly Option<string> Postgres = StoreFactory.PostgresOption();

    private static int WithStore(string dataDir, ParseResult result, Func<ISubscriberStore, int> action)
    {
        try
        {
            using var key = MasterKey.Load(dataDir);
            using var store = StoreFactory.Open(dataDir, result.GetValue(Postgres), key);
            return action(store);
        }
        catch (DuplicateSubscriberException e)
        {
            result.InvocationConfiguration.Error.WriteLine($"best subscriber: {e.Message} Nothing was added.");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or Npgsql.NpgsqlException)
        {
            result.InvocationConfiguration.Error.WriteLine($"best subscriber: {e.Message}");
            return ExitCodes.BadInput;
        }
    }

    private static bool IsImsi(string? value) => value is { Length: >= 6 and <= 15 } && value.All(char.IsAsciiDigit);

    private static byte[] ComputeOpc(byte[] k, byte[] op)
    {
        var opc = new byte[16];
        Milenage.ComputeOpc(k, op, opc);
        return opc;
    }

    /// <summary>Validates one row; the message names the field and the expected form, never a key value.</summary>
    private static (NewSubscriber? Subscriber, string? Problem) Row(string? imsi, string? k, string? opc, string? op, string? amf)
    {
        if (!IsImsi(imsi))
        {
            return (null, "imsi must be 6..15 decimal digits");
        }

        if (!TryHex(k, 16, out var kBytes))
        {
            return (null, "k must be 32 hex digits (16 octets)");
        }

        byte[] opcBytes;
        if (!string.IsNullOrEmpty(opc) == !string.IsNullOrEmpty(op))
        {
            return (null, "give exactly one of opc and op (32 hex digits, 16 octets)");
        }

        if (!string.IsNullOrEmpty(opc))
        {
            if (!TryHex(opc, 16, out opcBytes))
            {
                return (null, "opc must be 32 hex digits (16 octets)");
            }
        }
        else
        {
            if (!TryHex(op, 16, out var opBytes))
            {
                return (null, "op must be 32 hex digits (16 octets)");
            }

            opcBytes = ComputeOpc(kBytes, opBytes);
        }

        ushort amfValue = 0x8000;
        if (!string.IsNullOrEmpty(amf))
        {
            if (!TryHex(amf, 2, out var amfBytes))
            {
                return (null, "amf must be 4 hex digits (2 octets)");
            }

            amfValue = (ushort)((amfBytes[0] << 8) | amfBytes[1]);
        }

        return (new NewSubscriber(imsi!, kBytes, opcBytes, amfValue), null);
    }

    private static bool TryHex(string? text, int octets, out byte[] bytes)
    {
        bytes = [];
        if (text is null || text.Length != octets * 2 || !text.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        bytes = Convert.FromHexString(text);
        return true;
    }

    private static (List<(int Line, NewSubscriber Subscriber)> Rows, List<(int Line, string Problem)> Problems) ReadCsv(FileInfo file)
    {
        var rows = new List<(int, NewSubscriber)>();
        var problems = new List<(int, string)>();
        var lines = File.ReadAllLines(file.FullName);
        if (lines.Length == 0)
        {
            problems.Add((1, "the file is empty; the first line must be a header such as imsi,k,opc,amf"));
            return (rows, problems);
        }

        var header = lines[0].Split(',').Select(h => h.Trim().ToLowerInvariant()).ToList();
        if (!header.Contains("imsi") || !header.Contains("k") || (!header.Contains("opc") && !header.Contains("op")))
        {
            problems.Add((1, "the header must name the columns imsi, k and opc (or op), and may name amf"));
            return (rows, problems);
        }

        for (var i = 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            var cells = lines[i].Split(',').Select(c => c.Trim()).ToList();
            if (cells.Count != header.Count)
            {
                problems.Add((i + 1, $"expected {header.Count} columns, found {cells.Count}"));
                continue;
            }

            string? Cell(string name) => header.IndexOf(name) is var at && at >= 0 ? cells[at] : null;
            var (subscriber, problem) = Row(Cell("imsi"), Cell("k"), Cell("opc"), Cell("op"), Cell("amf"));
            if (subscriber is null)
            {
                problems.Add((i + 1, problem!));
            }
            else
            {
                rows.Add((i + 1, subscriber));
            }
        }

        return (rows, problems);
    }

    private static (List<(int Line, NewSubscriber Subscriber)> Rows, List<(int Line, string Problem)> Problems) ReadJson(FileInfo file)
    {
        var rows = new List<(int, NewSubscriber)>();
        var problems = new List<(int, string)>();
        var text = File.ReadAllText(file.FullName);
        try
        {
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind != JsonValueKind.Array)
            {
                problems.Add((1, "the file must hold a JSON array of subscribers"));
                return (rows, problems);
            }

            var lines = ObjectLines(text);
            var index = 0;
            foreach (var element in document.RootElement.EnumerateArray())
            {
                var line = index < lines.Count ? lines[index] : 1;
                index++;
                string? Field(string name) => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
                var (subscriber, problem) = Row(Field("imsi"), Field("k"), Field("opc"), Field("op"), Field("amf"));
                if (subscriber is null)
                {
                    problems.Add((line, problem!));
                }
                else
                {
                    rows.Add((line, subscriber));
                }
            }

        }
        catch (JsonException e)
        {
            problems.Add(((int)(e.LineNumber ?? 0) + 1, "not valid JSON"));
        }

        return (rows, problems);
    }

    /// <summary>
    /// The line (1-based) on which each element of the top-level array starts, in one pass that skips
    /// string contents, so a brace inside a value does not count.
    /// </summary>
    private static List<int> ObjectLines(string text)
    {
        var lines = new List<int>();
        var line = 1;
        var depth = 0;
        var inString = false;
        var escaped = false;
        var expecting = false;
        foreach (var ch in text)
        {
            if (ch == '\n')
            {
                line++;
            }

            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (ch == '\\')
                {
                    escaped = true;
                }
                else if (ch == '"')
                {
                    inString = false;
                }

                continue;
            }

            if (depth == 1 && expecting && !char.IsWhiteSpace(ch) && ch != ']')
            {
                lines.Add(line);
                expecting = false;
            }

            switch (ch)
            {
                case '"':
                    inString = true;
                    break;
                case '[' or '{':
                    depth++;
                    expecting = depth == 1;
                    break;
                case ']' or '}':
                    depth--;
                    break;
                case ',' when depth == 1:
                    expecting = true;
                    break;
            }
        }

        return lines;
    }
}
