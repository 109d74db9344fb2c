using System.Security.Cryptography;
using OpenBest.Card.Virtual;

namespace OpenBest.Card.Tests;

/// <summary>
/// The OBF secure-element application (seed 003 appendix 2.2.2) by APDU: Encrypt Device Data and Decrypt Data under a key index,
/// the four properties of appendix 2 (identity, integrity, replay, confidentiality) in both directions, key installation only
/// under a key the card already trusts, and Verify-and-Store of a new server key signed by the current one.
/// </summary>
public sealed class SecureElementTests
{
    private static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private static readonly byte[] Imported = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

    [Fact]
    public void DeviceData_IsSealedUnderTheKeyIndex_WithACounter_AndBoundToTheCard()
    {
        using var card = Card();
        using var se = ObfSecureElement.Open(new VirtualUiccChannel(card));
        Assert.NotEqual(0, se.LogicalChannel);
        var first = se.EncryptDeviceData(1, "PVT 28.61N 77.21E"u8);
        var second = se.EncryptDeviceData(1, "PVT 28.61N 77.21E"u8);
        Assert.True(first.Ok && second.Ok);
        Assert.True(SealedData.TryHeader(first.Data, out var index, out var c1));
        Assert.True(SealedData.TryHeader(second.Data, out _, out var c2));
        Assert.Equal(1, index);
        Assert.True(c2 > c1);
        // Confidentiality: the text is not in the packet; identical messages give different packets.
        Assert.True(first.Data.AsSpan().IndexOf("PVT"u8) < 0);
        Assert.NotEqual(first.Data, second.Data);
        var plain = new byte[first.Data.Length - SealedData.Overhead];
        Assert.True(SealedData.TryOpen(Imported, SealDirection.DeviceToServer, card.IccidOctets, first.Data, plain));
        Assert.Equal("PVT 28.61N 77.21E"u8.ToArray(), plain);
        // Identity: another card's ICCID does not open it; integrity: one flipped bit does not either.
        var otherIccid = (byte[])card.IccidOctets.Clone();
        otherIccid[5] ^= 0x01;
        Assert.False(SealedData.TryOpen(Imported, SealDirection.DeviceToServer, otherIccid, first.Data, plain));
        var altered = (byte[])first.Data.Clone();
        altered[SealedData.HeaderLength] ^= 0x01;
        Assert.False(SealedData.TryOpen(Imported, SealDirection.DeviceToServer, card.IccidOctets, altered, plain));
        // A packet the device sealed is no server packet (directions have separate nonces).
        Assert.False(SealedData.TryOpen(Imported, SealDirection.ServerToDevice, card.IccidOctets, first.Data, plain));
    }

    [Fact]
    public void ServerData_OpensOnlyWithTrustData_AndOnlyOnce()
    {
        using var card = Card();
        using var se = ObfSecureElement.Open(new VirtualUiccChannel(card));
        var command = SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 7, card.IccidOctets, "SET SERVER vtams2.example.com:5001"u8);
        var opened = se.DecryptData(1, command);
        Assert.True(opened.Ok, opened.ToString());
        Assert.Equal("SET SERVER vtams2.example.com:5001"u8.ToArray(), opened.Data);
        // Replayed: the counter was used (6985); an older counter too.
        Assert.Equal(StatusWord.ConditionsNotSatisfied, se.DecryptData(1, command).Sw);
        Assert.Equal(StatusWord.ConditionsNotSatisfied, se.DecryptData(1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 6, card.IccidOctets, "x"u8)).Sw);
        // Altered, or sealed by someone without the key: the TRUST data does not verify (6982).
        var altered = SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 8, card.IccidOctets, "SET SERVER evil.example.net:5001"u8);
        altered[^1] ^= 0x80;
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.DecryptData(1, altered).Sw);
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.DecryptData(1, SealedData.Seal(RandomNumberGenerator.GetBytes(32), SealDirection.ServerToDevice, 1, 9, card.IccidOctets, "x"u8)).Sw);
        // Sealed for another card: refused too.
        var otherIccid = (byte[])card.IccidOctets.Clone();
        otherIccid[0] ^= 0x10;
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.DecryptData(1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 10, otherIccid, "x"u8)).Sw);
        // A key index the card does not have; a packet for another index than P1.
        Assert.Equal(StatusWord.ReferencedDataNotFound, se.EncryptDeviceData(9, "x"u8).Sw);
        Assert.Equal(StatusWord.IncorrectData, se.DecryptData(2, command).Sw);
        // After all the refusals the next genuine command still opens.
        Assert.True(se.DecryptData(1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 11, card.IccidOctets, "PING"u8)).Ok);
    }

    [Fact]
    public void InstallKey_OnlyUnderAKeyTheCardTrusts()
    {
        using var card = Card();
        using var se = ObfSecureElement.Open(new VirtualUiccChannel(card));
        var fresh = RandomNumberGenerator.GetBytes(32);
        // Sealed under an unknown key: refused, nothing installed.
        var untrusted = SealedData.Seal(RandomNumberGenerator.GetBytes(32), SealDirection.ServerToDevice, 1, 1, card.IccidOctets, [5, .. fresh]);
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.InstallKey(5, 1, untrusted).Sw);
        Assert.DoesNotContain(se.KeySlots(), s => s.Index == 5);
        // The packet's index byte must name the slot it is for (no moving a key to another slot).
        Assert.Equal(StatusWord.IncorrectData, se.InstallKey(6, 1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 2, card.IccidOctets, [5, .. fresh])).Sw);
        // Under the imported key at index 1: installed at 5, usable, and the packet cannot be replayed.
        var trusted = SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 3, card.IccidOctets, [5, .. fresh]);
        Assert.True(se.InstallKey(5, 1, trusted).Ok);
        Assert.Contains(((byte)5, KeyOrigin.Installed), se.KeySlots());
        Assert.Equal(StatusWord.ConditionsNotSatisfied, se.InstallKey(5, 1, trusted).Sw);
        var packet = se.EncryptDeviceData(5, "health ok"u8);
        var plain = new byte[9];
        Assert.True(SealedData.TryOpen(fresh, SealDirection.DeviceToServer, card.IccidOctets, packet.Data, plain));
        // A personalised key is never replaced over the air.
        Assert.Equal(StatusWord.ConditionsNotSatisfied, se.InstallKey(1, 5, SealedData.Seal(fresh, SealDirection.ServerToDevice, 5, 1, card.IccidOctets, [1, .. fresh])).Sw);
    }

    [Fact]
    public void VerifyAndStore_ANewServerKey_SignedByTheCurrentOne()
    {
        using var current = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var next = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var rogue = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var card = Card(serverKey: ServerKeyRecord.PublicKey(current));
        using var se = ObfSecureElement.Open(new VirtualUiccChannel(card));
        Assert.Equal(0UL, se.ServerKey()!.Value.Sequence);
        var nextKey = ServerKeyRecord.PublicKey(next);
        // Signed by a key the card does not hold: refused.
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.VerifyAndStoreServerKey(ServerKeyRecord.Create(rogue, 1, "https://b.example.org/", card.Iccid, nextKey)).Sw);
        // For another card: refused.
        Assert.Equal(StatusWord.IncorrectData, se.VerifyAndStoreServerKey(ServerKeyRecord.Create(current, 1, "https://b.example.org/", "8988210100000000999", nextKey)).Sw);
        // Altered after signing: refused.
        var record = ServerKeyRecord.Create(current, 1, "https://b.example.org/", card.Iccid, nextKey);
        var altered = (byte[])record.Clone();
        altered[12] ^= 0x01;
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.VerifyAndStoreServerKey(altered).Sw);
        // Genuine: stored; from now on only the new key signs, and an old record cannot come back.
        Assert.True(se.VerifyAndStoreServerKey(record).Ok);
        var stored = se.ServerKey()!.Value;
        Assert.Equal((1UL, "https://b.example.org/"), (stored.Sequence, stored.Endpoint));
        Assert.Equal(nextKey, stored.PublicKey);
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, se.VerifyAndStoreServerKey(ServerKeyRecord.Create(current, 2, "https://a.example.org/", card.Iccid, ServerKeyRecord.PublicKey(current))).Sw);
        Assert.Equal(StatusWord.ConditionsNotSatisfied, se.VerifyAndStoreServerKey(ServerKeyRecord.Create(next, 1, "https://c.example.org/", card.Iccid, nextKey)).Sw);
        Assert.Equal(StatusWord.IncorrectData, se.VerifyAndStoreServerKey([1, 2, 3]).Sw);
    }

    [Fact]
    public void Counters_SurviveARestart_SoNoNonceIsEverReused()
    {
        var directory = Directory.CreateTempSubdirectory("openbest-se-");
        try
        {
            var state = Path.Combine(directory.FullName, "card.state");
            ulong before;
            using (var card = Card(state: state))
            using (var se = ObfSecureElement.Open(new VirtualUiccChannel(card)))
            {
                se.EncryptDeviceData(1, "a"u8);
                Assert.True(SealedData.TryHeader(se.EncryptDeviceData(1, "b"u8).Data, out _, out before));
                Assert.True(se.DecryptData(1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 40, card.IccidOctets, "x"u8)).Ok);
            }

            using (var card = Card(state: state))
            using (var se = ObfSecureElement.Open(new VirtualUiccChannel(card)))
            {
                Assert.True(SealedData.TryHeader(se.EncryptDeviceData(1, "c"u8).Data, out _, out var after));
                Assert.True(after > before);
                Assert.Equal(StatusWord.ConditionsNotSatisfied, se.DecryptData(1, SealedData.Seal(Imported, SealDirection.ServerToDevice, 1, 40, card.IccidOctets, "x"u8)).Sw);
            }

            Assert.DoesNotContain(Convert.ToHexString(Imported), Convert.ToHexString(File.ReadAllBytes(state)), StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static VirtualUicc Card(string? state = null, byte[]? serverKey = null) =>
        VirtualUiccTests.Card(K, Opc, state: state, serverKey: serverKey, keys: new Dictionary<byte, ReadOnlyMemory<byte>> { [1] = Imported });
}
