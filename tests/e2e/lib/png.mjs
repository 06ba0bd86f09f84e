// A small PNG reader for screenshots: 8-bit greyscale/RGB/RGBA (and their
// alpha variants), non-interlaced, which is what Chromium writes. Enough to
// check sizes and read pixels without an image library.
import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** True when buf starts with the PNG signature. */
export function isPng(buf) {
  return Buffer.isBuffer(buf) && buf.length > 8 && buf.subarray(0, 8).equals(SIGNATURE);
}

/** Width and height from the IHDR chunk, without decoding pixels. */
export function pngSize(buf) {
  if (!isPng(buf) || buf.toString('latin1', 12, 16) !== 'IHDR')
    throw new Error('not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc)
    return a;
  return pb <= pc ? b : c;
}

/** Decodes a PNG into {width, height, pixel(x, y) -> [r, g, b, a]}. */
export function decodePng(buf) {
  if (!isPng(buf))
    throw new Error('not a PNG');
  let off = 8;
  let ihdr = null;
  const idat = [];
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    off += 12 + len;
    if (type === 'IHDR')
      ihdr = data;
    else if (type === 'IDAT')
      idat.push(data);
    else if (type === 'IEND')
      break;
  }
  if (!ihdr)
    throw new Error('PNG without IHDR');
  const width = ihdr.readUInt32BE(0), height = ihdr.readUInt32BE(4);
  const depth = ihdr[8], colorType = ihdr[9], interlace = ihdr[12];
  const channels = CHANNELS[colorType];
  if (depth !== 8 || !channels || interlace !== 0)
    throw new Error(`unsupported PNG (depth ${depth}, colour type ${colorType}, interlace ${interlace})`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1))
    throw new Error('truncated PNG data');
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[row + i - channels] : 0;
      const b = y > 0 ? out[row - stride + i] : 0;
      const c = y > 0 && i >= channels ? out[row - stride + i - channels] : 0;
      let v = line[i];
      switch (filter) {
      case 0: break;
      case 1: v += a; break;
      case 2: v += b; break;
      case 3: v += (a + b) >> 1; break;
      case 4: v += paeth(a, b, c); break;
      default: throw new Error(`bad PNG filter ${filter}`);
      }
      out[row + i] = v & 0xff;
    }
  }
  return {
    width,
    height,
    pixel(x, y) {
      x = Math.round(x);
      y = Math.round(y);
      if (x < 0 || y < 0 || x >= width || y >= height)
        throw new RangeError(`pixel ${x},${y} outside ${width}x${height}`);
      const p = y * stride + x * channels;
      switch (channels) {
      case 1: return [out[p], out[p], out[p], 255];
      case 2: return [out[p], out[p], out[p], out[p + 1]];
      case 3: return [out[p], out[p + 1], out[p + 2], 255];
      default: return [out[p], out[p + 1], out[p + 2], out[p + 3]];
      }
    },
  };
}

/** True when [r, g, b] is within tol of want on every channel. */
export function colorNear(px, want, tol = 40) {
  return want.every((v, i) => Math.abs(px[i] - v) <= tol);
}
