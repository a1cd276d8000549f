/**
 * Inventory files are UTF-8. Anything else is refused with where it goes wrong: read leniently, a Latin-1
 * "Café" would be stored as "Caf\uFFFD" without a word, and a UTF-16 file would be one long syntax error.
 */
export type Decoded = { ok: true; text: string } | { ok: false; line: number; column: number; message: string };

const UTF16 = 'the file is UTF-16; save it as UTF-8';

export function decodeUtf8(bytes: Uint8Array): Decoded {
  if (looksLikeUtf16(bytes)) return { ok: false, line: 0, column: 0, message: UTF16 };
  try {
    // A UTF-8 byte-order mark is dropped (ignoreBOM: false).
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    const offset = firstInvalidByte(bytes);
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset; i++) {
      if (bytes[i] === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    return { ok: false, line, column: offset - lineStart + 1, message: `not valid UTF-8 (byte offset ${offset}); save the file as UTF-8` };
  }
}

function looksLikeUtf16(bytes: Uint8Array): boolean {
  const [b0, b1, b2, b3] = bytes;
  if ((b0 === 0xff && b1 === 0xfe) || (b0 === 0xfe && b1 === 0xff)) return true;
  // Without a byte-order mark it still shows: YAML starts with ASCII, which UTF-16 pairs with a zero byte.
  if (bytes.length < 4) return false;
  return (b0 !== 0 && b1 === 0 && b2 !== 0 && b3 === 0) || (b0 === 0 && b1 !== 0 && b2 === 0 && b3 !== 0);
}

/** Where the first byte sequence that is not UTF-8 starts (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
export function firstInvalidByte(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const extra = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0;
    if (extra === 0) return i;
    // The second byte's range is narrower after some leads: that is what rules out overlongs and surrogates.
    const low = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
    const high = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
    for (let k = 1; k <= extra; k++) {
      const byte = bytes[i + k];
      if (byte === undefined) return i;
      if (k === 1 ? byte < low || byte > high : byte < 0x80 || byte > 0xbf) return i;
    }
    i += extra + 1;
  }
  return bytes.length;
}
