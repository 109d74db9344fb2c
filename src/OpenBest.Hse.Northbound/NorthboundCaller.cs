using Microsoft.AspNetCore.Http;

namespace OpenBest.Hse.Northbound;

/// <summary>
/// Who calls the northbound API or the dashboard, as its client certificate (common name = EAS Id, or "operator:NAME")
/// or its OAuth 2.0 access token proved it. An enterprise sees and changes only what names its own EAS Id; an operator
/// sees every enterprise.
/// </summary>
/// <param name="Name">The enterprise's EAS Id, or the operator user's name.</param>
/// <param name="IsOperator">Whether the caller is an operator user.</param>
public sealed record NorthboundCaller(string Name, bool IsOperator)
{
    /// <summary>The enterprise the caller is limited to, or null for an operator (every enterprise).</summary>
    public string? Enterprise => IsOperator ? null : Name;

    /// <summary>Whether the caller may see what belongs to <paramref name="easId"/>.</summary>
    public bool MaySee(string easId) => IsOperator || string.Equals(Name, easId, StringComparison.Ordinal);

    /// <summary>The authenticated caller of a request, or null when it proved no one.</summary>
    public static NorthboundCaller? Of(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items.TryGetValue(typeof(NorthboundCaller), out var caller) ? caller as NorthboundCaller : null;
    }

    /// <summary>Records the authenticated caller of a request (the authentication middleware does this).</summary>
    public static void Set(HttpContext context, NorthboundCaller caller)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Items[typeof(NorthboundCaller)] = caller;
    }
}
