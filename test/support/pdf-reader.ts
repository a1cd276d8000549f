/**
 * Reads a PDF back the way a viewer would, with pdfjs (Mozilla's reader, not the library that wrote it): each
 * page's text items with their positions, the document info, and which fonts the file embeds.
 */
import { getDocument } from 'pdfjs-dist/legacy/build/pdf.mjs';

export interface PdfItem {
  str: string;
  x: number;
  y: number;
  width: number;
}

export interface ReadPdf {
  pages: Array<{ width: number; height: number; items: PdfItem[]; text: string }>;
  info: Record<string, unknown>;
  /** Font descriptors in the file and how many carry an embedded TrueType program (/FontFile2). */
  fontDescriptors: number;
  embeddedTrueType: number;
  /** Fonts named without a program: the 14 standard fonts a viewer substitutes. */
  standardFonts: string[];
}

export async function readPdf(bytes: Buffer): Promise<ReadPdf> {
  const raw = bytes.toString('latin1');
  const doc = await getDocument({ data: new Uint8Array(bytes), disableFontFace: true, useSystemFonts: false, verbosity: 0 }).promise;
  try {
    const pages: ReadPdf['pages'] = [];
    for (let n = 1; n <= doc.numPages; n++) {
      const page = await doc.getPage(n);
      const [, , width, height] = page.view as [number, number, number, number];
      const content = await page.getTextContent();
      const items = content.items
        .filter((item): item is Extract<typeof item, { str: string }> => 'str' in item)
        .map((item) => ({ str: item.str, x: item.transform[4] as number, y: item.transform[5] as number, width: item.width }));
      pages.push({ width, height, items, text: items.map((i) => i.str).join(' ') });
    }
    const meta = await doc.getMetadata();
    return {
      pages,
      info: meta.info as Record<string, unknown>,
      fontDescriptors: (raw.match(/\/Type \/FontDescriptor/g) ?? []).length,
      embeddedTrueType: (raw.match(/\/FontFile2 \d+ 0 R/g) ?? []).length,
      standardFonts: [...raw.matchAll(/\/BaseFont \/(Helvetica|Times|Courier|Symbol|ZapfDingbats)[\w-]*/g)].map((m) => m[0]),
    };
  } finally {
    await doc.destroy();
  }
}

/** The number printed after a headline label on the summary page ("Device compliance 66.7%" -> "66.7%"). */
export function headlineValue(text: string, label: string): string | undefined {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`${escaped}\\s+(n/a|[\\d.]+%?)`).exec(text)?.[1];
}

/** PNG: the 8-byte signature, then IHDR's width and height. */
export function pngSize(bytes: Buffer): { width: number; height: number } | undefined {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!bytes.subarray(0, 8).equals(signature) || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}
