using FsCheck;
using FsCheck.Fluent;
using OpenBest.Protocol;

namespace OpenBest.Protocol.Tests;

/// <summary>
/// Property tests over generated messages (FsCheck generators, pinned seed): encode → parse returns the
/// same message for every command; random bytes never throw and never parse into something they are not.
/// </summary>
public sealed class PropertyTests
{
    private const ulong Seed = 20261122;
    private const int Cases = 2000;

    // A null array must stay "absent": the implicit byte[] → ReadOnlyMemory conversion would make it empty.
    private static ReadOnlyMemory<byte>? Opt(byte[]? value) => value is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(value);

    private static Gen<byte> Octet => Gen.Choose(0, 255).Select(i => (byte)i);

    private static Gen<byte[]> Octets(int length) => Gen.ArrayOf(Octet, length);

    private static Gen<byte[]> Octets(int min, int max) => Gen.Choose(min, max).SelectMany(n => Gen.ArrayOf(Octet, n));

    private static Gen<T> Optional<T>(Gen<T> gen) where T : class => Gen.OneOf(Gen.Constant<T>(null!), gen);

    private static Gen<string> Digits(int min, int max) => Gen.Choose(min, max).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 9), n)).Select(d => string.Concat(d));

    private static Gen<string> Text(int min, int max) => Gen.Choose(min, max).SelectMany(n => Gen.ArrayOf(Gen.Choose('a', 'z'), n)).Select(c => new string([.. c.Select(x => (char)x)]));

    private static Gen<UeConfiguration> UeConfigurations =>
        from agreements in Gen.Choose(1, 0x3F)
        from service in Gen.Choose(0, 3)
        from mode in Gen.Elements(true, false)
        from suites in Gen.Choose(1, 0x0F)
        from schemes in Gen.Choose(1, 7)
        from release in Octet
        select new UeConfiguration(release, (KeyAgreements)agreements, (BestService)service, mode, (byte)suites, (CounterSchemes)schemes);

    private static Gen<HseConfiguration> HseConfigurations =>
        from service in Gen.Choose(0, 2)
        from mode in Gen.Elements(true, false)
        from agreement in Gen.Elements(KeyAgreements.UmtsAka, KeyAgreements.EpsAka, KeyAgreements.FiveGAka, KeyAgreements.EapAkaPrime, KeyAgreements.Gba, KeyAgreements.Akma)
        from suite in Gen.Choose(1, 4)
        from n in Gen.Elements<byte>(1, 2, 4)
        select new HseConfiguration((BestService)service, mode, agreement, (byte)suite, n);

    private static Gen<ServingNetwork> Networks => Gen.OneOf(
        Octets(3).Select(p => ServingNetwork.FromPlmnId(p)),
        Text(4, 60).Select(ServingNetwork.FromName));

    private static Gen<ControlCommand> Commands => Gen.OneOf(
        from useImsi in Gen.Elements(true, false)
        from imsi in Digits(6, 15)
        from suci in Octets(1, 80)
        from configuration in UeConfigurations
        from eas in Text(1, 64)
        from nonce in Octets(8)
        from network in Optional(Networks)
        from cookie in Gen.Elements(true, false)
        from cookieValue in Octets(8)
        select (ControlCommand)new SessionRequest(useImsi ? imsi : null, useImsi ? null : Opt(suci), configuration, eas, nonce, network, cookie ? Opt(cookieValue) : null),
        from configuration in HseConfigurations
        from rand in Octets(16)
        from autn in Octets(16)
        from checksum in Octets(8)
        from confirm in Gen.Elements(true, false)
        from lifetime in Gen.Choose(0, int.MaxValue)
        from hasLifetime in Gen.Elements(true, false)
        from ekid in Octets(1, 16)
        from hasEkid in Gen.Elements(true, false)
        select (ControlCommand)new SessionStart(configuration, rand, autn, checksum, confirm, hasLifetime ? (uint)lifetime : null, hasLifetime ? (uint)lifetime ^ 0x5555 : null, hasEkid ? Opt(ekid) : null),
        Gen.Elements<ControlCommand>(SessionStartConfirmation.Instance, SessionTerminateResponse.Instance, ManageKeysRequest.FromUe, ManageKeysResponse.Instance, SessionSuspend.Instance, SessionResume.Instance),
        Gen.Choose(0, 0x11).Select(c => (ControlCommand)new SessionTerminateRequest(c == 0 ? null : (Cause)c)),
        from keyId in Gen.Choose(1, 7)
        from rand in Octets(16)
        from autn in Octets(16)
        from ekid in Optional(Octets(1, 16))
        select (ControlCommand)new ManageKeysRequest((byte)keyId, rand, autn, Opt(ekid), 600, null),
        from cause in Gen.Choose(1, 0x11)
        from rejected in Octet
        from checksum in Optional(Octets(8))
        from auts in Optional(Octets(14))
        from backOff in Gen.Choose(0, 65535)
        from cookie in Optional(Octets(8))
        select (ControlCommand)new MessageReject((Cause)cause, rejected, Opt(checksum), Opt(auts), backOff == 0 ? null : (ushort)backOff, Opt(cookie)),
        from counter in Gen.Choose(int.MinValue, int.MaxValue)
        from keyId in Gen.Choose(0, 7)
        from tag in Optional(Octets(4))
        select (ControlCommand)new DataAck((uint)counter, keyId == 0 ? null : (byte)keyId, Opt(tag)));

    [Fact]
    public void EveryGeneratedCommand_EncodeParseEncode_IsIdentity()
    {
        foreach (var command in Commands.Sample(30, new Rnd(Seed), Cases))
        {
            var encoded = command.Encode();
            Assert.True(ControlCommand.TryParse(encoded, out var parsed) == ParseStatus.Ok, command + " " + Convert.ToHexString(encoded));
            Assert.Equal(command.GetType(), parsed!.GetType());
            Assert.Equal(Convert.ToHexString(encoded), Convert.ToHexString(parsed.Encode()));
        }
    }

    [Fact]
    public void RandomBytes_NeverThrow_InAnyParser()
    {
        foreach (var bytes in Octets(0, 120).Sample(50, new Rnd(Seed + 1), Cases * 5))
        {
            if (HeaderPrefix.TryRead(bytes, out var prefix) == ParseStatus.Ok)
            {
                foreach (var n in new[] { 1, 2, 4 })
                {
                    foreach (var tag in new[] { 0, 4, 8, 16 })
                    {
                        if (EmsdpFrame.TryParse(bytes, prefix, n, tag, out var frame) == ParseStatus.Ok && prefix.Plane == Crypto.Aead.Plane.Control)
                        {
                            ControlCommand.TryParse(frame.Body, out _);
                        }
                    }
                }
            }

            ControlCommand.TryParse(bytes, out _);
            var sequence = new System.Buffers.ReadOnlySequence<byte>(bytes);
            StreamFraming.TryRead(ref sequence, out _);
            ImsiCodec.TryDecode(bytes, out _);
        }
    }

    [Fact]
    public void RandomBodies_WithAValidCommandCode_ParseOnlyIntoThatCommand()
    {
        var codes = Enum.GetValues<CommandCode>();
        foreach (var (code, tlvs) in Gen.Elements(codes).Zip(Octets(0, 60)).Sample(30, new Rnd(Seed + 2), Cases * 5))
        {
            var body = new[] { (byte)code }.Concat(tlvs).ToArray();
            if (ControlCommand.TryParse(body, out var parsed) == ParseStatus.Ok)
            {
                Assert.Equal(code, parsed!.Code);
            }
            else
            {
                Assert.Null(parsed);
            }
        }
    }
}
