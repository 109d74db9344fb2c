using BenchmarkDotNet.Attributes;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Benchmarks;

/// <summary>AuC and USIM work per authentication (one MILENAGE subscriber).</summary>
public class AkaBenchmarks
{
    private readonly byte[] _rand = Convert.FromHexString("23553cbe9637a89d218ae64dae47bf35");
    private readonly byte[] _randOut = new byte[16];
    private readonly byte[] _xres = new byte[8];
    private readonly byte[] _ck = new byte[16];
    private readonly byte[] _ik = new byte[16];
    private readonly byte[] _autn = new byte[16];
    private readonly byte[] _ak = new byte[6];
    private readonly byte[] _k = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private readonly byte[] _opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private Milenage _milenage = null!;
    private ulong _sqn = 32;

    [GlobalSetup]
    public void Setup() => _milenage = new Milenage(_k, _opc);

    [GlobalCleanup]
    public void Cleanup() => _milenage.Dispose();

    /// <summary>A full vector as the AuC makes it: RAND from the CSPRNG, f1..f5, AUTN (subscriber already loaded).</summary>
    [Benchmark(Description = "AKA vector (CSPRNG RAND)")]
    public void GenerateVector()
    {
        _sqn += 32;
        AuthenticationCentre.Generate(_milenage, _sqn, 0x8000, default, _randOut, _xres, _ck, _ik, _autn, _ak);
    }

    /// <summary>A full vector including loading the subscriber (K key schedule, OPc copy) — the cold-cache case of an HSE.</summary>
    [Benchmark(Description = "AKA vector incl. subscriber load")]
    public void GenerateVectorColdSubscriber()
    {
        using var milenage = new Milenage(_k, _opc);
        _sqn += 32;
        AuthenticationCentre.Generate(milenage, _sqn, 0x8000, _rand, _randOut, _xres, _ck, _ik, _autn, _ak);
    }
}

/// <summary>The 3GPP KDF as the HSE uses it per session.</summary>
public class KdfBenchmarks
{
    private readonly byte[] _ck = Convert.FromHexString("5349fbe098649f948f5d2e973a81c00f");
    private readonly byte[] _ik = Convert.FromHexString("9744871ad32bf9bbd1dd5ce54e3e2e5a");
    private readonly byte[] _sqnXorAk = Convert.FromHexString("bb52e91c747a");
    private readonly byte[] _rand = Convert.FromHexString("81e92b6c0ee0e12ebceba8d92a99dfa5");
    private readonly byte[] _ueNonce = new byte[8];
    private readonly byte[] _out = new byte[32];

    [Benchmark(Description = "KDF K_HSE (FC 0x63)")]
    public void KHse() => KeyDerivation.KHse5GAka(_ck, _ik, "5G:mnc093.mcc208.3gppnetwork.org", _sqnXorAk, _out);

    [Benchmark(Description = "KDF K_E2Mint (FC 0xFFBE)")]
    public void KE2MInt() => BestKeys.KE2MInt(_out, CipherSuite.Aes128Ccm8, 1, 1, _rand, _ueNonce, _out.AsSpan(0, 16));
}

/// <summary>Protect + open of one user-plane message for each suite (confidential service: header as AD, payload encrypted).</summary>
public class AeadBenchmarks
{
    private readonly byte[] _nonce = new byte[12];
    private readonly byte[] _header = [0x62, 0x05, 0x2a];
    private byte[] _payload = null!;
    private byte[] _sealed = null!;
    private byte[] _opened = null!;
    private CipherSuite _suite = null!;
    private AeadKey _key = null!;

    [Params(1, 2, 3, 4)]
    public byte Suite { get; set; }

    [Params(16, 64, 256)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        CipherSuite.TryGet(Suite, out _suite);
        _key = _suite.CreateKey(new byte[_suite.KeySize]);
        _payload = new byte[Size];
        _sealed = new byte[Size + 16];
        _opened = new byte[Size];
        CipherSuite.WriteNonce(Direction.Uplink, Plane.User, 42, _nonce);
    }

    [GlobalCleanup]
    public void Cleanup() => _key.Dispose();

    [Benchmark(Description = "protect+open")]
    public bool ProtectAndOpen()
    {
        var n = _suite.Seal(_key, _nonce, Plane.User, _header, _payload, _sealed);
        return _suite.Open(_key, _nonce, Plane.User, _header, _sealed.AsSpan(0, n), _opened);
    }
}
