using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace OpenBest.EasInterface;

/// <summary>
/// A body read from the network up to one octet past <see cref="EasXml.MaxBody"/> (a larger one is never read whole),
/// in a pooled buffer that is zeroed when disposed: bodies of this interface can carry K_EAS_PSK.
/// </summary>
public sealed class ReceivedBody : IDisposable
{
    private byte[]? _buffer;

    private ReceivedBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    /// <summary>Octets read (at most <see cref="EasXml.MaxBody"/> + 1).</summary>
    public int Length { get; }

    /// <summary>Whether the body is larger than <see cref="EasXml.MaxBody"/>.</summary>
    public bool TooLarge => Length > EasXml.MaxBody;

    /// <summary>The octets read.</summary>
    public ReadOnlySpan<byte> Span => (_buffer ?? throw new ObjectDisposedException(nameof(ReceivedBody))).AsSpan(0, Length);

    /// <summary>Reads <paramref name="body"/> up to one octet past the limit.</summary>
    public static async Task<ReceivedBody> ReadAsync(Stream body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        var buffer = ArrayPool<byte>.Shared.Rent(EasXml.MaxBody + 1);
        var length = 0;
        try
        {
            int read;
            while (length <= EasXml.MaxBody && (read = await body.ReadAsync(buffer.AsMemory(length, EasXml.MaxBody + 1 - length), cancellationToken).ConfigureAwait(false)) > 0)
            {
                length += read;
            }

            return new ReceivedBody(buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
            throw;
        }
    }

    /// <summary>Zeroes the octets and returns the buffer.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }
}

/// <summary>An HSE–EAS answer: an XML body with its status; the body is zeroed once sent (it may carry K_EAS_PSK).</summary>
public sealed class EasXmlResult : IResult
{
    private readonly int _status;
    private readonly byte[] _body;

    /// <summary>Writes <paramref name="message"/> as the body.</summary>
    public EasXmlResult(int status, EasMessage message)
    {
        _status = status;
        _body = EasXml.Write(message);
    }

    /// <inheritdoc/>
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        try
        {
            httpContext.Response.StatusCode = _status;
            httpContext.Response.ContentType = EasXml.MediaType + "; charset=utf-8";
            await httpContext.Response.Body.WriteAsync(_body, httpContext.RequestAborted).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(_body);
        }
    }
}
