/** Binary events (docs/protocol.md, "Binary events"): the little-endian frame a `?binary=1`
 * connection receives, the binary `publish` message, and the base64 form of JSON-only connections.
 * No runtime dependencies (browser build). @internal */
import { clientError } from "./errors.js";
import type { ServerMessage } from "./types.js";

/** The format version: the first byte of every binary event and binary publish. */
export const BINARY_VERSION = 0x01;
/** Size of the fixed part of a binary event's header (the strings follow it). */
const FIXED = 32;
const FLAG_SNAPSHOT = 1;
const FLAG_KEY = 2;

let utf8Decoder: TextDecoder | undefined;
let utf8Encoder: TextEncoder | undefined;
const utf8 = (bytes: Uint8Array): string => (utf8Decoder ??= new TextDecoder("utf-8", { fatal: true })).decode(bytes);

/** A u64 read as a number (exact below 2^53, which seqs, frames and ms times stay under). */
const u64 = (v: DataView, at: number): number => v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x1_0000_0000;

/** The bytes of an ArrayBuffer or of any view (Node `Buffer` included), without a copy. */
export function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

/** Decodes a binary event frame into the message a JSON `event` would have parsed to, with
 * `data` the payload (a `Uint8Array`) and `encoding: "binary"`. The payload is a view onto the
 * received buffer when it starts 8-aligned there (always for a browser `ArrayBuffer` or `ws`'s
 * `arraybuffer` mode: `H` is a multiple of 8); otherwise (a Node `Buffer` slice of a pooled
 * buffer) it is copied into a fresh buffer, so `new Float32Array(d.buffer, d.byteOffset,
 * d.byteLength / 4)` (or `Float64Array`) always works. Throws a PROTOCOL error on a malformed frame. */
export function decodeBinaryEvent(data: ArrayBuffer | ArrayBufferView): ServerMessage {
  const bytes = bytesOf(data);
  const len = bytes.byteLength;
  if (len < FIXED || bytes[0] !== BINARY_VERSION) {
    throw clientError("PROTOCOL", `server sent a binary message that is no binary event (${len} bytes)`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, len);
  const flags = v.getUint8(1);
  const h = v.getUint16(2, true);
  const c = v.getUint8(4);
  const t = v.getUint8(5);
  const k = v.getUint16(6, true);
  const strings = FIXED + c + t + k;
  if (h < strings || h > len) {
    throw clientError("PROTOCOL", `binary event header length ${h} does not fit (strings end at ${strings}, ${len} bytes)`);
  }
  let channel: string, eventType: string, key: string;
  try {
    channel = utf8(bytes.subarray(FIXED, FIXED + c));
    eventType = utf8(bytes.subarray(FIXED + c, FIXED + c + t));
    key = utf8(bytes.subarray(FIXED + c + t, strings));
  } catch {
    throw clientError("PROTOCOL", "binary event header holds invalid UTF-8");
  }
  let payload = bytes.subarray(h);
  if ((bytes.byteOffset + h) % 8 !== 0) payload = payload.slice(); // a fresh, aligned buffer
  const time = new Date(u64(v, 24));
  if (Number.isNaN(time.getTime())) throw clientError("PROTOCOL", "binary event time out of range");
  const msg: ServerMessage = {
    type: "event",
    channel,
    seq: u64(v, 8),
    frame: u64(v, 16),
    timestamp: time.toISOString(),
    event_type: eventType,
    encoding: "binary",
    data: payload,
  };
  if (flags & FLAG_KEY) msg.key = key;
  if (flags & FLAG_SNAPSHOT) msg.snapshot = true;
  return msg;
}

/** A binary `publish`: `0x01`, `0`, u16 LE length of the JSON part, the JSON part (a `publish`
 * object without `data`), then the payload. Throws INVALID_FIELD if the JSON part passes 65535 bytes. */
export function encodeBinaryPublish(json: string, payload: Uint8Array): Uint8Array {
  const head = (utf8Encoder ??= new TextEncoder()).encode(json);
  if (head.byteLength > 0xffff) {
    throw clientError("INVALID_FIELD", `the publish header is ${head.byteLength} bytes (at most 65535 in a binary publish)`);
  }
  const out = new Uint8Array(4 + head.byteLength + payload.byteLength);
  out[0] = BINARY_VERSION;
  out[1] = 0;
  out[2] = head.byteLength & 0xff;
  out[3] = head.byteLength >>> 8;
  out.set(head, 4);
  out.set(payload, 4 + head.byteLength);
  return out;
}

/** Standard base64 (with or without padding) to bytes; throws on anything else. */
export function decodeBase64(s: string): Uint8Array {
  const U8 = Uint8Array as { fromBase64?: (s: string) => Uint8Array };
  if (U8.fromBase64) return U8.fromBase64(s); // newer engines
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
