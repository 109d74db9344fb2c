namespace OpenBest.Obf.Tests;

internal static class Hex
{
    public static byte[] Bytes(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    public static string String(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);
}
