/**
 * The DejaVu fonts every report embeds (PDF) or draws with (chart PNG): found through the package's own location,
 * never a path guessed relative to this file, so they are the same files wherever patchbay is installed. DejaVu
 * covers Latin, Greek, Cyrillic, Arabic and Hebrew, so device names in those scripts render instead of boxes.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

export interface ReportFonts {
  family: string;
  regular: string;
  bold: string;
}

let found: ReportFonts | undefined;

export function reportFonts(): ReportFonts {
  if (!found) {
    const ttf = path.join(path.dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    found = { family: 'DejaVu Sans', regular: path.join(ttf, 'DejaVuSans.ttf'), bold: path.join(ttf, 'DejaVuSans-Bold.ttf') };
  }
  return found;
}
