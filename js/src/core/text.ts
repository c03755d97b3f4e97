/**
 * Text as Python's side treats it, so that both sides make one filter of the same input: str.strip()'s
 * whitespace, valid_text's repair of lone surrogates, and sorted()'s code point order.
 */

// str.isspace(): JS trim() also strips U+FEFF, and leaves \x1c-\x1f and U+0085, which Python strips.
const SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const EDGES = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'g');
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` without the whitespace at its ends, as str.strip() has it. */
export function strip(text: string): string {
  return text.replace(EDGES, '');
}

/** `text` with each lone surrogate made U+FFFD (record.valid_text): no store, socket or file takes one. */
export function validText(text: string): string {
  return text.replace(LONE_SURROGATE, '\ufffd');
}

/** Compare by code point, as Python sorts text (a JS sort compares UTF-16 units: astral characters before U+E000-U+FFFF). */
export function compareCodePoints(a: string, b: string): number {
  for (let i = 0; i < a.length && i < b.length; ) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}
