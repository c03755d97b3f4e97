/**
 * A lossless reader for metadata JSON text: numbers keep their source text.
 *
 * Hand-written because JSON.parse turns 1.0 into 1, and the metadata filter compares numbers as the
 * text Python/DuckDB render them ("1.0" is not "1"); JSON.parse's source-text reviver is not in Node 20.
 * Only metadata objects go through it, lazily, and the result is cached per record.
 */

export class JsonNumber {
  constructor(readonly raw: string) {}
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

export function parseLossless(text: string): JsonValue {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const fail = (): never => {
    throw new SyntaxError(`bad JSON at ${i}`);
  };
  const value = (): JsonValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: { [key: string]: JsonValue } = {};
      ws();
      if (text[i] === '}') return i++, out;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const key = str();
        ws();
        if (text[i++] !== ':') fail();
        out[key] = value();
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i++] === '}') return out;
        fail();
      }
    }
    if (c === '[') {
      i++;
      const out: JsonValue[] = [];
      ws();
      if (text[i] === ']') return i++, out;
      for (;;) {
        out.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i++] === ']') return out;
        fail();
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) return (i += 4), true;
    if (text.startsWith('false', i)) return (i += 5), false;
    if (text.startsWith('null', i)) return (i += 4), null;
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
    return new JsonNumber(m![0]);
  };
  const str = (): string => {
    // Find the closing quote, then let JSON.parse do the unescaping.
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail();
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const out = value();
  ws();
  if (i !== text.length) fail();
  return out;
}
