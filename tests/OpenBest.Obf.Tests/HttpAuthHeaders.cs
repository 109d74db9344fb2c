using System.Text;

namespace OpenBest.Obf.Tests;

/// <summary>One challenge of a WWW-Authenticate field: a scheme and either a token68 or auth-params (names case-insensitive).</summary>
internal sealed record AuthChallenge(string Scheme, string? Token68, IReadOnlyDictionary<string, string> Parameters)
{
    /// <summary>The value of <paramref name="name"/>, or null.</summary>
    public string? this[string name] => Parameters.TryGetValue(name, out var value) ? value : null;
}

/// <summary>
/// The HTTP authentication header grammar (RFC 7235 section 2.1 and 4.1, RFC 7615 section 3, RFC 2617
/// section 3.2): challenges and auth-param lists, tokens and quoted strings with quoted-pairs, list
/// elements separated by commas with optional whitespace, empty list elements allowed.
/// </summary>
/// <remarks>
/// A parameter name may occur only once per challenge (RFC 7235 2.1); a second occurrence makes the
/// whole field malformed, since a client cannot know which value the server meant.
/// </remarks>
internal static class HttpAuthHeaders
{
    /// <summary>Parses a WWW-Authenticate field value (1#challenge).</summary>
    public static bool TryParseChallenges(string value, out List<AuthChallenge> challenges, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        challenges = [];
        var reader = new Reader(value);
        reader.SkipSeparators();
        while (!reader.AtEnd)
        {
            var scheme = reader.ReadToken();
            if (scheme.Length == 0)
            {
                return Fail(reader, "an auth-scheme token was expected", out error);
            }

            var hadSpace = reader.SkipWhitespace();
            var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            string? token68 = null;
            if (hadSpace && !reader.AtEnd && reader.Peek == ',')
            {
                // "Digest , realm=..." : RFC 7235 lets the auth-param list start with an empty element.
                var afterScheme = reader.Position;
                reader.SkipSeparators();
                var lookahead = reader.Position;
                var isParameter = reader.ReadToken().Length > 0 && SkipsToEquals(ref reader);
                reader.Position = isParameter ? lookahead : afterScheme;
            }

            if (!reader.AtEnd && reader.Peek != ',')
            {
                if (!hadSpace)
                {
                    return Fail(reader, $"whitespace must follow the scheme \"{scheme}\"", out error);
                }

                var start = reader.Position;
                var candidate = reader.ReadToken68();
                reader.SkipWhitespace();
                if (candidate.Length > 0 && (reader.AtEnd || reader.Peek == ','))
                {
                    token68 = candidate;
                }
                else
                {
                    reader.Position = start;
                    if (!TryReadParameters(ref reader, parameters, stopAtNewChallenge: true, out error))
                    {
                        return false;
                    }
                }
            }

            challenges.Add(new AuthChallenge(scheme, token68, parameters));
            reader.SkipSeparators();
        }

        if (challenges.Count == 0)
        {
            return Fail(reader, "the field holds no challenge", out error);
        }

        error = null;
        return true;
    }

    /// <summary>Parses a bare auth-param list (Authentication-Info, or the part of an Authorization field after the scheme).</summary>
    public static bool TryParseParameters(string value, out Dictionary<string, string> parameters, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var reader = new Reader(value);
        reader.SkipSeparators();
        if (reader.AtEnd)
        {
            error = null;
            return true;
        }

        if (!TryReadParameters(ref reader, parameters, stopAtNewChallenge: false, out error))
        {
            return false;
        }

        if (!reader.AtEnd)
        {
            return Fail(reader, "unexpected text after the last auth-param", out error);
        }

        return true;
    }

    /// <summary>Writes <paramref name="value"/> as a quoted-string, escaping '"' and '\'.</summary>
    /// <exception cref="ArgumentException">The value holds a control character, which no quoted-string can carry.</exception>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var builder = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            if (char.IsControl(c) && c != '\t')
            {
                throw new ArgumentException("A quoted-string cannot carry control characters.", nameof(value));
            }

            if (c is '"' or '\\')
            {
                builder.Append('\\');
            }

            builder.Append(c);
        }

        return builder.Append('"').ToString();
    }

    private static bool TryReadParameters(ref Reader reader, Dictionary<string, string> parameters, bool stopAtNewChallenge, out string? error)
    {
        while (true)
        {
            var name = reader.ReadToken();
            if (name.Length == 0)
            {
                return Fail(reader, "an auth-param name was expected", out error);
            }

            reader.SkipWhitespace();
            if (reader.AtEnd || reader.Peek != '=')
            {
                return Fail(reader, $"'=' was expected after \"{name}\"", out error);
            }

            reader.Advance();
            reader.SkipWhitespace();
            string value;
            if (!reader.AtEnd && reader.Peek == '"')
            {
                if (!reader.TryReadQuotedString(out value, out error))
                {
                    return false;
                }
            }
            else
            {
                value = reader.ReadToken();
                if (value.Length == 0)
                {
                    return Fail(reader, $"a token or quoted-string value was expected for \"{name}\"", out error);
                }
            }

            if (!parameters.TryAdd(name, value))
            {
                return Fail(reader, $"the parameter \"{name}\" occurs twice", out error);
            }

            reader.SkipWhitespace();
            if (reader.AtEnd)
            {
                error = null;
                return true;
            }

            if (reader.Peek != ',')
            {
                return Fail(reader, $"',' was expected after the value of \"{name}\"", out error);
            }

            var beforeSeparators = reader.Position;
            reader.SkipSeparators();
            if (reader.AtEnd)
            {
                error = null;
                return true;
            }

            // A token followed by '=' is the next parameter; a token followed by anything else starts
            // the next challenge (its scheme), which only a WWW-Authenticate list may hold.
            var lookahead = reader.Position;
            var next = reader.ReadToken();
            reader.SkipWhitespace();
            var isParameter = next.Length > 0 && !reader.AtEnd && reader.Peek == '=';
            reader.Position = lookahead;
            if (!isParameter)
            {
                if (stopAtNewChallenge)
                {
                    reader.Position = beforeSeparators;
                    error = null;
                    return true;
                }

                return Fail(reader, "an auth-param was expected after ','", out error);
            }
        }
    }

    private static bool SkipsToEquals(ref Reader reader)
    {
        reader.SkipWhitespace();
        return !reader.AtEnd && reader.Peek == '=';
    }

    private static bool Fail(Reader reader, string message, out string? error)
    {
        error = $"{message} (at offset {reader.Position})";
        return false;
    }

    private ref struct Reader(string text)
    {
        private readonly string _text = text;

        public int Position { get; set; }

        public readonly bool AtEnd => Position >= _text.Length;

        public readonly char Peek => _text[Position];

        public void Advance() => Position++;

        /// <summary>Skips SP and HTAB; returns whether there was any.</summary>
        public bool SkipWhitespace()
        {
            var start = Position;
            while (!AtEnd && Peek is ' ' or '\t')
            {
                Position++;
            }

            return Position > start;
        }

        /// <summary>Skips whitespace and commas (empty list elements are allowed by the #rule).</summary>
        public void SkipSeparators()
        {
            while (!AtEnd && Peek is ' ' or '\t' or ',')
            {
                Position++;
            }
        }

        public string ReadToken()
        {
            var start = Position;
            while (!AtEnd && IsTokenChar(Peek))
            {
                Position++;
            }

            return _text[start..Position];
        }

        /// <summary>token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".</summary>
        public string ReadToken68()
        {
            var start = Position;
            while (!AtEnd && (char.IsAsciiLetterOrDigit(Peek) || Peek is '-' or '.' or '_' or '~' or '+' or '/'))
            {
                Position++;
            }

            if (Position == start)
            {
                return string.Empty;
            }

            while (!AtEnd && Peek == '=')
            {
                Position++;
            }

            return _text[start..Position];
        }

        /// <summary>quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).</summary>
        public bool TryReadQuotedString(out string value, out string? error)
        {
            var builder = new StringBuilder();
            Position++;
            while (!AtEnd)
            {
                var c = Peek;
                Position++;
                if (c == '"')
                {
                    value = builder.ToString();
                    error = null;
                    return true;
                }

                if (c == '\\')
                {
                    if (AtEnd)
                    {
                        break;
                    }

                    c = Peek;
                    Position++;
                }

                if (char.IsControl(c) && c != '\t')
                {
                    value = string.Empty;
                    error = $"a control character inside a quoted-string (at offset {Position - 1})";
                    return false;
                }

                builder.Append(c);
            }

            value = string.Empty;
            error = $"an unterminated quoted-string (at offset {Position})";
            return false;
        }

        private static bool IsTokenChar(char c) =>
            char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
    }
}
