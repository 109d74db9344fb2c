-- Wireshark dissector for EMSDP wire profile 1 (OpenBest), on UDP port 3163.
--
-- Load it with:  tshark -X lua_script:tools/wireshark/emsdp.lua -r capture.pcap
--            or:  copy it into ~/.local/lib/wireshark/plugins/
--
-- The counter length n and the tag size of a message depend on its session: the dissector learns them
-- from the Session Start (HSE configuration TLV 0x09) it sees for that Session ID, in capture order.
-- Messages of a session whose Session Start is not in the capture show the header only.

local emsdp = Proto("emsdp", "EMSDP (BEST, TS 33.163, wire profile 1)")

local planes = { [0] = "control plane (CP)", [1] = "user plane (UP)" }
local commands = {
  [0x10] = "Session Request", [0x11] = "Session Start", [0x12] = "Session Start Confirmation",
  [0x20] = "Session Terminate Request", [0x21] = "Session Terminate Response",
  [0x30] = "Manage Keys Request", [0x31] = "Manage Keys Response", [0x80] = "Message Reject",
  [0xE0] = "Session Suspend", [0xE1] = "Session Resume", [0xE2] = "Data Ack",
}
local tlv_names = {
  [0x01] = "IMSI", [0x02] = "SUCI", [0x03] = "UE configuration", [0x04] = "Enterprise Setup (EAS Id)",
  [0x05] = "Serving Network", [0x06] = "RAND", [0x07] = "AUTN", [0x08] = "AUTS", [0x09] = "HSE configuration",
  [0x0A] = "Request checksum", [0x0B] = "Confirmation required", [0x0C] = "Key ID", [0x0D] = "Cause",
  [0x0E] = "Enterprise Key Identifier", [0x0F] = "Back-off timer", [0x10] = "Key lifetime",
  [0x11] = "EAS key identifier", [0x12] = "Acked counter", [0x13] = "UE nonce", [0x14] = "Acked tag",
  [0x15] = "Rejected command", [0x16] = "Cookie", [0x17] = "HSE nonce",
}
local causes = {
  [0x01] = "unknown subscriber", [0x02] = "AKA MAC failure", [0x03] = "AKA synchronisation failure",
  [0x04] = "integrity check failed", [0x05] = "unknown session", [0x06] = "counter outside window",
  [0x07] = "service not supported", [0x08] = "no common suite or key agreement", [0x09] = "service not allowed in this serving network",
  [0x0A] = "unknown EAS", [0x0B] = "malformed message", [0x0C] = "unknown comprehension-required TLV",
  [0x0D] = "congestion", [0x0E] = "session limit reached", [0x0F] = "key set exhausted", [0x10] = "not authorised",
  [0x11] = "cookie required",
}
local suites = { [1] = "AES-128-CCM-8", [2] = "AES-128-CCM-4/8", [3] = "AES-128-GCM", [4] = "ChaCha20-Poly1305" }
local services = { [0] = "key agreement only", [1] = "integrity", [2] = "confidential", [3] = "none" }
-- Tag size per suite: { CP, UP }.
local tag_sizes = { [1] = { 8, 8 }, [2] = { 8, 4 }, [3] = { 16, 16 }, [4] = { 16, 16 } }

local f = emsdp.fields
f.type = ProtoField.uint8("emsdp.type", "Type", base.HEX, nil, 0xC0)
f.plane = ProtoField.uint8("emsdp.plane", "Plane", base.DEC, planes, 0x20)
f.key_id = ProtoField.uint8("emsdp.key_id", "Key ID", base.DEC, nil, 0x0E)
f.ack = ProtoField.bool("emsdp.ack", "Ack requested", 8, nil, 0x01)
f.session_id = ProtoField.uint32("emsdp.session_id", "Session ID", base.DEC)
f.counter = ProtoField.uint32("emsdp.counter", "Counter field", base.DEC)
f.command = ProtoField.uint8("emsdp.command", "Command", base.HEX, commands)
f.tlv = ProtoField.bytes("emsdp.tlv", "TLV")
f.tlv_tag = ProtoField.uint8("emsdp.tlv.tag", "Tag", base.HEX, tlv_names)
f.tlv_length = ProtoField.uint8("emsdp.tlv.length", "Length", base.DEC)
f.tlv_value = ProtoField.bytes("emsdp.tlv.value", "Value")
f.cause = ProtoField.uint8("emsdp.cause", "Cause", base.HEX, causes)
f.eas_id = ProtoField.string("emsdp.eas_id", "EAS Id")
f.suite = ProtoField.uint8("emsdp.suite", "Suite", base.DEC, suites)
f.service = ProtoField.uint8("emsdp.service", "Service", base.DEC, services, 0x03)
f.counter_length = ProtoField.uint8("emsdp.n", "Counter length n", base.DEC)
f.payload = ProtoField.bytes("emsdp.payload", "Payload (ciphertext when confidential)")
f.tag = ProtoField.bytes("emsdp.tag", "Tag")

local e_malformed = ProtoExpert.new("emsdp.malformed", "Malformed EMSDP message", expert.group.MALFORMED, expert.severity.ERROR)
emsdp.experts = { e_malformed }

-- Session ID → { n, suite } learned from Session Starts.
local sessions = {}

local function read_session_id(buf, offset)
  if buf:len() <= offset then return nil end
  local first = buf(offset, 1):uint()
  local form = bit32.band(first, 0xC0)
  if form == 0x00 then return first, 1 end
  if form == 0x40 and buf:len() >= offset + 2 then return bit32.band(buf(offset, 2):uint(), 0x3FFF), 2 end
  if form == 0x80 and buf:len() >= offset + 4 then return bit32.band(buf(offset, 4):uint(), 0x3FFFFFFF), 4 end
  return nil
end

local function add_tlvs(buf, tree, offset, limit)
  while offset + 2 <= limit do
    local tag = buf(offset, 1):uint()
    local length = buf(offset + 1, 1):uint()
    if offset + 2 + length > limit then
      tree:add_proto_expert_info(e_malformed, "TLV length past the body")
      return
    end
    local name = tlv_names[tag] or string.format("unknown (0x%02x)", tag)
    local t = tree:add(f.tlv, buf(offset, 2 + length)):set_text(string.format("%s (0x%02x), %d octets", name, tag, length))
    t:add(f.tlv_tag, buf(offset, 1))
    t:add(f.tlv_length, buf(offset + 1, 1))
    if length > 0 then
      local value = buf(offset + 2, length)
      t:add(f.tlv_value, value)
      if tag == 0x0D then t:add(f.cause, value) end
      if tag == 0x04 then t:add(f.eas_id, value) end
      if tag == 0x09 and length == 4 then
        t:add(f.service, buf(offset + 2, 1))
        t:add(f.suite, buf(offset + 4, 1))
        t:add(f.counter_length, buf(offset + 5, 1))
      end
    end
    offset = offset + 2 + length
  end
end

function emsdp.dissector(buf, pinfo, tree)
  if buf:len() < 2 or bit32.band(buf(0, 1):uint(), 0xC0) ~= 0x40 then return 0 end
  local octet0 = buf(0, 1):uint()
  local plane = bit32.rshift(bit32.band(octet0, 0x20), 5)
  local key_id = bit32.rshift(bit32.band(octet0, 0x0E), 1)
  local sid, sid_length = read_session_id(buf, 1)
  if sid == nil then return 0 end

  pinfo.cols.protocol = "EMSDP"
  local root = tree:add(emsdp, buf())
  root:add(f.type, buf(0, 1))
  root:add(f.plane, buf(0, 1))
  root:add(f.key_id, buf(0, 1))
  if plane == 1 then root:add(f.ack, buf(0, 1)) end
  root:add(f.session_id, buf(1, sid_length), sid)

  local offset = 1 + sid_length
  local n, tag_length = 1, 0
  local known = sessions[sid]
  local is_start = false
  if key_id ~= 0 and plane == 0 and buf:len() > offset + 3 and buf(offset + 1, 1):uint() == 0x11 and buf(offset + 2, 1):uint() == 0x09 then
    -- A Session Start: n = 1; its first TLV (HSE configuration) names the suite.
    is_start = true
    local suite = buf(offset + 6, 1):uint()
    sessions[sid] = { n = buf(offset + 7, 1):uint(), suite = suite }
    tag_length = tag_sizes[suite] and tag_sizes[suite][1] or 0
  elseif key_id ~= 0 then
    if known == nil or tag_sizes[known.suite] == nil then
      root:append_text(" (no Session Start for this Session ID in the capture: counter and tag unknown)")
      pinfo.cols.info = string.format("EMSDP session %d, key %d, %s", sid, key_id, planes[plane])
      return buf:len()
    end
    n = known.n
    tag_length = tag_sizes[known.suite][plane + 1]
  end

  if buf:len() < offset + n + tag_length then
    root:add_proto_expert_info(e_malformed, "shorter than its header and tag")
    return buf:len()
  end
  root:add(f.counter, buf(offset, n))
  offset = offset + n
  local body_end = buf:len() - tag_length

  if plane == 0 then
    if offset >= body_end then
      root:add_proto_expert_info(e_malformed, "no command code")
      return buf:len()
    end
    local code = buf(offset, 1):uint()
    root:add(f.command, buf(offset, 1))
    pinfo.cols.info = string.format("%s, session %d, key %d", commands[code] or string.format("command 0x%02x", code), sid, key_id)
    add_tlvs(buf, root, offset + 1, body_end)
  else
    if body_end > offset then root:add(f.payload, buf(offset, body_end - offset)) end
    pinfo.cols.info = string.format("UP data, session %d, key %d, %d octets", sid, key_id, body_end - offset)
  end
  if tag_length > 0 then root:add(f.tag, buf(body_end, tag_length)) end
  return buf:len()
end

DissectorTable.get("udp.port"):add(3163, emsdp)
