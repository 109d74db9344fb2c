using System.Net.Http.Headers;
using System.Text;
using OpenBest.EasInterface;

namespace OpenBest.Hse.Web.Tests;

/// <summary>The dashboard read as a script would: HttpClient with a client certificate of the development PKI (or none).</summary>
internal static class DashboardHttp
{
    /// <summary>A client for <paramref name="fixture"/>'s HSE that presents pki/<paramref name="pkiName"/> (or no certificate) and trusts the HSE's CA.</summary>
    public static HttpClient Client(DashboardFixture fixture, string? pkiName)
    {
        var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(fixture.Data).Certificate);
        var handler = new SocketsHttpHandler();
        var certificate = pkiName is null ? null : DevelopmentPki.LoadPair(new DevelopmentPki.Pair(Path.Combine(fixture.Data, "pki", pkiName + ".crt"), Path.Combine(fixture.Data, "pki", pkiName + ".key")));
        DevelopmentPki.UseFor(handler.SslOptions, ca, certificate);
        return new HttpClient(handler) { BaseAddress = new Uri(fixture.Origin), Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>Reads <c>/dashboard/events</c> (PATH with its query) until <paramref name="done"/> holds for the text so far; returns the text.</summary>
    public static async Task<string> ReadEventsAsync(HttpClient client, string path, Func<string, bool> done)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(90));
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync(deadline.Token);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = new StringBuilder();
        try
        {
            while (!done(text.ToString()) && await reader.ReadLineAsync(deadline.Token) is { } line)
            {
                text.AppendLine(line);
            }
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            Assert.Fail($"the events stream did not show what was expected within 90 s; it sent:\n{text}");
        }

        return text.ToString();
    }
}
