using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>An enterprise application's callback server (plain Kestrel on loopback): it records every notification it is sent.</summary>
internal sealed class CallbackApp : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<JsonObject> _received = new();
    private bool _failing;

    private CallbackApp(WebApplication app) => _app = app;

    /// <summary>While true, every callback is answered 503 (the application is down).</summary>
    public bool Failing
    {
        get => Volatile.Read(ref _failing);
        set => Volatile.Write(ref _failing, value);
    }

    public string Url { get; private set; } = string.Empty;

    public IReadOnlyList<JsonObject> Received => [.. _received];

    public int Requests;

    public static async Task<CallbackApp> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var callback = new CallbackApp(app);
        app.MapPost("/notify", async (HttpContext context) =>
        {
            Interlocked.Increment(ref callback.Requests);
            if (callback.Failing)
            {
                return Results.StatusCode(503);
            }

            var body = await JsonNode.ParseAsync(context.Request.Body);
            foreach (var item in body!["notifications"]!.AsArray())
            {
                callback._received.Enqueue(item!.AsObject());
            }

            return Results.NoContent();
        });
        await app.StartAsync();
        callback.Url = app.Urls.First() + "/notify";
        return callback;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
