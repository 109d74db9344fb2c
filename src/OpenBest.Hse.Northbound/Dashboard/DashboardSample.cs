namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>One sample interval: what happened in it, for the whole HSE and per EAS Id, and the sessions at its end.</summary>
/// <param name="At">When the interval ended.</param>
/// <param name="Seconds">How long it was (the rates divide by it).</param>
/// <param name="Received">EMSDP messages the HSE received in it (all bearers).</param>
/// <param name="Sent">EMSDP messages the HSE sent in it.</param>
/// <param name="All">The HSE's counts, indexed by <see cref="DashboardCount"/>.</param>
/// <param name="ByEnterprise">The counts of each EAS Id that counted something (sparse).</param>
/// <param name="Sessions">Established or suspended sessions at its end.</param>
/// <param name="SessionsByEnterprise">The same per EAS Id (sparse).</param>
internal sealed record DashboardSample(
    DateTimeOffset At,
    double Seconds,
    long Received,
    long Sent,
    long[] All,
    IReadOnlyDictionary<string, long[]> ByEnterprise,
    int Sessions,
    IReadOnlyDictionary<string, int> SessionsByEnterprise);
