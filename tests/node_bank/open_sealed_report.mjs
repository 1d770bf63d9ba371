// Opens a sealed-report bundle (docs/security.md "Sealed reports") with an
// independent HPKE implementation (@hpke/core): proof that the format is
// what the docs say and that an app in another language can open it.
//
//   node open_sealed_report.mjs <vector.json>
//
// Prints {"entries": [{"info_hex": ..., "plaintext": ...}, ...]} on stdout.
import { readFileSync } from "node:fs";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const vector = JSON.parse(readFileSync(process.argv[2], "utf8"));

// The bundle: "CLB1" || u16 count || count x (u16 len || info || u32 len || message), big-endian.
function decodeBundle(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Buffer.from(bytes.subarray(0, 4)).toString("latin1") !== "CLB1") throw new Error("not a bundle");
  const count = view.getUint16(4);
  let at = 6;
  const entries = [];
  for (let i = 0; i < count; i++) {
    const n = view.getUint16(at);
    const info = bytes.subarray(at + 2, at + 2 + n);
    at += 2 + n;
    const m = view.getUint32(at);
    const message = bytes.subarray(at + 4, at + 4 + m);
    at += 4 + m;
    entries.push({ info, message });
  }
  if (at !== bytes.length) throw new Error("trailing bytes");
  return entries;
}

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});
const privateKey = await suite.kem.importKey("raw", hex(vector.recipient_private_key_hex), false);
const publicKey = await suite.kem.importKey("raw", hex(vector.recipient_public_key_hex), true);
const out = [];
for (const { info, message } of decodeBundle(hex(vector.bundle_hex))) {
  // A message is enc (32 bytes) || AEAD ciphertext; the associated data is empty.
  const recipient = await suite.createRecipientContext({
    recipientKey: { privateKey, publicKey },
    enc: message.slice(0, 32),
    info: info.slice(),
  });
  const plaintext = await recipient.open(message.slice(32));
  out.push({ info_hex: Buffer.from(info).toString("hex"), plaintext: new TextDecoder().decode(plaintext) });
}
process.stdout.write(JSON.stringify({ entries: out }) + "\n");
