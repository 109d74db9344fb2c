using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Playwright;
using OpenBest.Client;
using OpenBest.Testing;

namespace OpenBest.Hse.Web.Tests;

/// <summary>
/// The HSE's live operator dashboard (<c>/dashboard</c>) in a real browser, against a real <c>best hse</c> with real
/// devices: what an operator and an enterprise see, that it updates live (server-sent events), that no subscriber
/// identity, external identifier or other enterprise ever reaches a page or a stream, and that nobody else gets in.
/// Screenshots go to artifacts/dashboard beside the test binaries (each test prints its path).
/// </summary>
public sealed class DashboardTests(DashboardFixture fixture) : IClassFixture<DashboardFixture>
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task OperatorPage_ShowsEveryEnterprisesSessions_AndNoIdentityInThePageOrTheStream()
    {
        await using var context = await fixture.ContextAsync("operator-" + DashboardFixture.Operator);
        var page = await context.NewPageAsync();
        var response = await page.GotoAsync(fixture.Origin + "/dashboard");
        Assert.Equal(200, response!.Status);

        foreach (var (channel, service, enterprise) in new[]
        {
            (fixture.AcmeMeter, "confidentiality", DashboardFixture.Acme),
            (fixture.AcmeGateway, "key agreement only", DashboardFixture.Acme),
            (fixture.GlobexSensor, "integrity", DashboardFixture.Globex),
            (fixture.PushChannel, "confidentiality", "HSE push channel"),
        })
        {
            var row = page.Locator($"#sessions tr[data-session-id='{channel.SessionId.ToString(CultureInfo.InvariantCulture)}']");
            await row.WaitForAsync();
            var text = await row.InnerTextAsync();
            Assert.Contains(service, text, StringComparison.Ordinal);
            Assert.Contains(enterprise, text, StringComparison.Ordinal);
            Assert.Contains("established", text, StringComparison.Ordinal);
        }

        await Assertions.Expect(page.Locator("#caller")).ToHaveTextAsync("operator " + DashboardFixture.Operator);
        Assert.True(await page.Locator("#picker-label").IsVisibleAsync(), "an operator can pick an enterprise's view");
        foreach (var enterprise in new[] { DashboardFixture.Acme, DashboardFixture.Globex, DashboardFixture.PushEasId })
        {
            await page.Locator($"#enterprises tr[data-enterprise='{enterprise}']").WaitForAsync();
        }

        // The enterprises' key requests are in the audit table, but not the external identifiers they named.
        await page.Locator("#audit tbody tr", new PageLocatorOptions { HasText = "key-" }).First.WaitForAsync();
        var html = await page.ContentAsync();
        AssertNoSecret(html, "the operator's page");
        await DashboardFixture.ScreenshotAsync(page, "operator");

        using var http = DashboardHttp.Client(fixture, "operator-" + DashboardFixture.Operator);
        var stream = await DashboardHttp.ReadEventsAsync(http, "/dashboard/events",
            text => text.Contains(SessionField(fixture.GlobexSensor), StringComparison.Ordinal) && text.Contains(SessionField(fixture.AcmeMeter), StringComparison.Ordinal));
        Assert.Contains(DashboardFixture.Globex, stream, StringComparison.Ordinal);
        AssertNoSecret(stream, "the operator's events stream");

        // A snapshot per sample (1 s) and per burst of session changes (1 s apart at least): never a busy loop.
        using var snapshot = JsonDocument.Parse(await http.GetStringAsync("/dashboard/api/snapshot", Cancel));
        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(fixture.Started).TotalSeconds;
        var version = snapshot.RootElement.GetProperty("version").GetInt64();
        Assert.True(version <= 2 * seconds + 5, $"{version} snapshots in {seconds:0} s");
    }

    [Fact]
    public async Task OperatorPage_MessageChart_MovesWithDeviceTraffic_WithoutReloading()
    {
        await using var context = await fixture.ContextAsync("operator-" + DashboardFixture.Operator);
        var page = await context.NewPageAsync();
        await page.GotoAsync(fixture.Origin + "/dashboard");
        await page.WaitForFunctionAsync("() => Number(document.querySelector('#chart-messages')?.dataset.points) >= 2");
        await page.EvaluateAsync("() => { window.stillTheSamePage = true; }");
        var before = await TotalAsync(page);
        var pointsBefore = await page.GetAttributeAsync("#chart-messages polyline[data-series='received']", "points");

        // Ten acknowledged payloads: at least ten messages in and ten acknowledgements out.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(SendStatus.Acknowledged, await fixture.AcmeMeter.SendAsync(System.Text.Encoding.UTF8.GetBytes($"reading {i}"), acknowledged: true, Cancel));
        }

        await Eventually.True(async () => await TotalAsync(page) >= before + 20, $"the message chart counts the new traffic (it counted {before} before)", Deadline);
        Assert.NotEqual(pointsBefore, await page.GetAttributeAsync("#chart-messages polyline[data-series='received']", "points"));
        Assert.True(await page.EvaluateAsync<bool>("() => window.stillTheSamePage === true"), "the page updated in place, without reloading");
        await DashboardFixture.ScreenshotAsync(page, "operator-chart");
    }

    [Fact]
    public async Task OperatorPicksAnEnterprise_SeesThatEnterprisesSessionsAndRatesOnly()
    {
        await using var context = await fixture.ContextAsync("operator-" + DashboardFixture.Operator);
        var page = await context.NewPageAsync();
        await page.GotoAsync(fixture.Origin + "/dashboard");
        await page.Locator(SessionRow(fixture.GlobexSensor)).WaitForAsync();
        await page.Locator("#picker").SelectOptionAsync(DashboardFixture.Acme);

        await page.Locator(SessionRow(fixture.GlobexSensor)).WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Detached });
        await page.Locator(SessionRow(fixture.AcmeMeter)).WaitForAsync();
        await page.Locator(SessionRow(fixture.AcmeGateway)).WaitForAsync();
        await Assertions.Expect(page.Locator("#total-received-name")).ToContainTextAsync("uplink payloads");
        Assert.Contains("enterprise=" + DashboardFixture.Acme, page.Url, StringComparison.Ordinal);
        await DashboardFixture.ScreenshotAsync(page, "operator-picks-acme");
    }

    [Fact]
    public async Task EnterpriseUser_SeesOnlyItsOwnSessions_AndNeverTheOtherEnterprise_InThePageTheStreamOrTheSnapshot()
    {
        var acme = "eas-" + DashboardFixture.Acme;
        await using var context = await fixture.ContextAsync(acme);
        var page = await context.NewPageAsync();
        await page.GotoAsync(fixture.Origin + "/dashboard?enterprise=" + DashboardFixture.Globex);
        await page.Locator(SessionRow(fixture.AcmeMeter)).WaitForAsync();
        await page.Locator(SessionRow(fixture.AcmeGateway)).WaitForAsync();
        await Assertions.Expect(page.Locator("#caller")).ToHaveTextAsync("enterprise " + DashboardFixture.Acme);
        await page.Locator("#audit tbody tr", new PageLocatorOptions { HasText = "key-" }).First.WaitForAsync();

        // A few more snapshots, so that anything about globex would have arrived by now.
        var version = int.Parse(await page.Locator("body").GetAttributeAsync("data-version") ?? "0", CultureInfo.InvariantCulture);
        await page.WaitForFunctionAsync($"() => Number(document.body.dataset.version) >= {version + 2}");
        Assert.Equal(0, await page.Locator(SessionRow(fixture.GlobexSensor)).CountAsync());
        Assert.Equal(0, await page.Locator(SessionRow(fixture.PushChannel)).CountAsync());
        Assert.False(await page.Locator("#picker-label").IsVisibleAsync(), "an enterprise has no enterprise picker");
        var html = await page.ContentAsync();
        Assert.DoesNotContain("globex", html, StringComparison.OrdinalIgnoreCase);
        AssertNoSecret(html, "the enterprise's page");
        await DashboardFixture.ScreenshotAsync(page, "enterprise-acme");

        using var http = DashboardHttp.Client(fixture, acme);
        var streamsEnded = await StreamsEndedAsync(http);
        var stream = await DashboardHttp.ReadEventsAsync(http, "/dashboard/events?enterprise=" + DashboardFixture.Globex,
            text => text.Split("event: snapshot").Length > 3);
        Assert.Contains(SessionField(fixture.AcmeMeter), stream, StringComparison.Ordinal);
        Assert.DoesNotContain(SessionField(fixture.GlobexSensor), stream, StringComparison.Ordinal);
        Assert.DoesNotContain("globex", stream, StringComparison.OrdinalIgnoreCase);
        AssertNoSecret(stream, "the enterprise's events stream");

        // The test hung up: the HSE ends that stream too (the audit middleware writes the call's line when it returns).
        await Eventually.True(async () => await StreamsEndedAsync(http) > streamsEnded, "the HSE ends the events stream whose client went away", Deadline);

        var json = await http.GetStringAsync("/dashboard/api/snapshot?enterprise=" + DashboardFixture.Globex, Cancel);
        Assert.DoesNotContain("globex", json, StringComparison.OrdinalIgnoreCase);
        AssertNoSecret(json, "the enterprise's snapshot");
        using var snapshot = JsonDocument.Parse(json);
        Assert.Equal(DashboardFixture.Acme, snapshot.RootElement.GetProperty("view").GetString());
        Assert.False(snapshot.RootElement.TryGetProperty("enterprises", out _), "an enterprise's snapshot lists no enterprises");
        var ids = snapshot.RootElement.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetUInt32()).Order().ToArray();
        Assert.Equal(new[] { fixture.AcmeMeter.SessionId, fixture.AcmeGateway.SessionId }.Order(), ids);
        Assert.All(snapshot.RootElement.GetProperty("audit").EnumerateArray(), line => Assert.Equal(DashboardFixture.Acme, line.GetProperty("enterprise").GetString()));
    }

    [Fact]
    public async Task WithoutCertificateOrToken_EveryDashboardPath_Is401()
    {
        using var http = DashboardHttp.Client(fixture, null);
        foreach (var path in new[] { "/dashboard", "/dashboard/events", "/dashboard/api/snapshot", "/dashboard/dashboard.js" })
        {
            using var response = await http.GetAsync(path, Cancel);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {(int)response.StatusCode}");
            using var forged = new HttpRequestMessage(HttpMethod.Get, path);
            forged.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-a-token");
            using var withForgedToken = await http.SendAsync(forged, Cancel);
            Assert.True(withForgedToken.StatusCode == HttpStatusCode.Unauthorized, $"{path} with a forged token: {(int)withForgedToken.StatusCode}");
        }

        await using var context = await fixture.ContextAsync(null);
        var page = await context.NewPageAsync();
        var answer = await page.GotoAsync(fixture.Origin + "/dashboard");
        Assert.Equal(401, answer!.Status);
        AssertNoSecret(await page.ContentAsync(), "the 401 page");
    }

    [Fact]
    public async Task EventsStreams_AreBoundedPerCaller_AndAClosedOneIsGivenBack()
    {
        // Only this test reads the dashboard as globex: its streams are all this test's.
        using var http = DashboardHttp.Client(fixture, "eas-" + DashboardFixture.Globex);
        var open = new List<HttpResponseMessage>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var response = await http.GetAsync("/dashboard/events", HttpCompletionOption.ResponseHeadersRead, Cancel);
                open.Add(response);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            using (var refused = await http.GetAsync("/dashboard/events", HttpCompletionOption.ResponseHeadersRead, Cancel))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.NotNull(refused.Headers.RetryAfter);
            }

            // The snapshot is not a stream: still served.
            using (var snapshot = JsonDocument.Parse(await http.GetStringAsync("/dashboard/api/snapshot", Cancel)))
            {
                Assert.Equal(DashboardFixture.Globex, snapshot.RootElement.GetProperty("view").GetString());
            }

            open[0].Dispose();
            open.RemoveAt(0);
            await Eventually.True(async () =>
            {
                var again = await http.GetAsync("/dashboard/events", HttpCompletionOption.ResponseHeadersRead, Cancel);
                open.Add(again);
                return again.StatusCode == HttpStatusCode.OK;
            }, "a stream is given back when its client goes", Deadline);
        }
        finally
        {
            foreach (var response in open)
            {
                response.Dispose();
            }
        }
    }

    [Fact]
    public async Task ACertificateNamingAnHseChannel_IsNoEnterprise_403()
    {
        // pki/eas-urn_best_push: common name urn:best:push, the HSE push service's reserved EAS Id (the OTA server holds urn:best:ota so).
        using var http = DashboardHttp.Client(fixture, "eas-urn_best_push");
        foreach (var path in new[] { "/dashboard", "/dashboard/events", "/dashboard/api/snapshot", $"/best/v1/{DashboardFixture.PushEasId}/sessions" })
        {
            using var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, Cancel);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{path}: {(int)response.StatusCode}");
            AssertNoSecret(await response.Content.ReadAsStringAsync(Cancel), path);
        }
    }

    /// <summary>How many events streams of this caller have ended, as its audit lines say.</summary>
    private static async Task<int> StreamsEndedAsync(HttpClient http)
    {
        using var snapshot = JsonDocument.Parse(await http.GetStringAsync("/dashboard/api/snapshot?event=api", Cancel));
        return snapshot.RootElement.GetProperty("audit").EnumerateArray().Count(line => line.GetProperty("detail").GetString() == "GET /dashboard/events 200");
    }

    private static string SessionRow(BestChannel channel) => $"#sessions tr[data-session-id='{channel.SessionId.ToString(CultureInfo.InvariantCulture)}']";

    private static string SessionField(BestChannel channel) => $"\"id\":{channel.SessionId.ToString(CultureInfo.InvariantCulture)},\"state\"";

    private static async Task<long> TotalAsync(IPage page) =>
        long.Parse(await page.GetAttributeAsync("#chart-messages", "data-total") ?? "0", CultureInfo.InvariantCulture);

    private static void AssertNoSecret(string text, string where)
    {
        foreach (var secret in DashboardFixture.Secrets)
        {
            Assert.False(text.Contains(secret, StringComparison.Ordinal), $"{where} shows {secret}");
        }
    }
}
