/**
 * Tables for the compliance PDF: fixed column widths, cells wrapped to at most a few lines and cut with an
 * ellipsis beyond (so a 300-character device name or error text cannot push a row off the page), a new page when
 * the next row does not fit, and the header drawn again at the top of every page the table continues on.
 */
import type PDFDocument from 'pdfkit';

type Doc = InstanceType<typeof PDFDocument>;

export interface Column {
  header: string;
  /** Share of the text width, relative to the other columns. */
  weight: number;
  align?: 'left' | 'right';
  /** Lines a cell may wrap to before it is cut with an ellipsis (default 1). */
  maxLines?: number;
}

export interface TableStyle {
  regular: string;
  bold: string;
  size: number;
}

const PAD = 3;
const HEADER_FILL = '#e2e8f0';
const RULE = '#cbd5e0';

interface Laid {
  x: number;
  width: number;
  column: Column;
}

function layColumns(doc: Doc, columns: readonly Column[]): Laid[] {
  const left = doc.page.margins.left;
  const total = doc.page.width - left - doc.page.margins.right;
  const weights = columns.reduce((sum, c) => sum + c.weight, 0);
  let x = left;
  return columns.map((column) => {
    const width = (total * column.weight) / weights;
    const laid = { x, width, column };
    x += width;
    return laid;
  });
}

const bottomOf = (doc: Doc): number => doc.page.height - doc.page.margins.bottom;

function cellHeight(doc: Doc, text: string, laid: Laid): number {
  const lineHeight = doc.currentLineHeight(true);
  const lines = laid.column.maxLines ?? 1;
  if (text === '') return lineHeight;
  return Math.min(doc.heightOfString(text, { width: laid.width - 2 * PAD }), lines * lineHeight);
}

function drawCells(doc: Doc, cells: readonly string[], laid: readonly Laid[], y: number, height: number): void {
  laid.forEach((cell, i) => {
    const text = cells[i] ?? '';
    if (text === '') return;
    doc.text(text, cell.x + PAD, y + PAD, {
      width: cell.width - 2 * PAD,
      height: height - 2 * PAD + 0.5,
      ellipsis: '…',
      align: cell.column.align ?? 'left',
      lineBreak: (cell.column.maxLines ?? 1) > 1,
    });
  });
}

function rowHeight(doc: Doc, cells: readonly string[], laid: readonly Laid[]): number {
  return Math.max(...laid.map((cell, i) => cellHeight(doc, cells[i] ?? '', cell))) + 2 * PAD;
}

function drawHeader(doc: Doc, laid: readonly Laid[], style: TableStyle, y: number): number {
  doc.font(style.bold).fontSize(style.size);
  const headers = laid.map((l) => l.column.header);
  // A header may take two lines whatever its column's cells may.
  const twoLines = laid.map((l) => ({ ...l, column: { ...l.column, maxLines: 2 } }));
  const height = rowHeight(doc, headers, twoLines);
  const left = laid[0]!.x;
  const right = laid[laid.length - 1]!.x + laid[laid.length - 1]!.width;
  doc.save().rect(left, y, right - left, height).fill(HEADER_FILL).restore();
  doc.fillColor('black');
  drawCells(doc, headers, twoLines, y, height);
  doc.font(style.regular).fontSize(style.size);
  return y + height;
}

/** Draws the table from the current y, adding pages as needed; leaves doc.y below it. */
export function drawTable(doc: Doc, columns: readonly Column[], rows: ReadonlyArray<readonly string[]>, style: TableStyle): void {
  const laid = layColumns(doc, columns);
  const left = laid[0]!.x;
  const right = laid[laid.length - 1]!.x + laid[laid.length - 1]!.width;
  doc.font(style.bold).fontSize(style.size);
  // A header alone at the foot of a page says nothing: start on a new page unless it and one row fit.
  if (doc.y + 3 * doc.currentLineHeight(true) + 4 * PAD > bottomOf(doc)) doc.addPage();
  let y = drawHeader(doc, laid, style, doc.y);
  for (const row of rows) {
    const height = rowHeight(doc, row, laid);
    if (y + height > bottomOf(doc)) {
      doc.addPage();
      y = drawHeader(doc, laid, style, doc.page.margins.top);
    }
    drawCells(doc, row, laid, y, height);
    doc.save().moveTo(left, y + height).lineTo(right, y + height).lineWidth(0.4).strokeColor(RULE).stroke().restore();
    y += height;
  }
  if (rows.length === 0) {
    doc.text('(none)', left + PAD, y + PAD, { lineBreak: false });
    y += doc.currentLineHeight(true) + 2 * PAD;
  }
  doc.x = left;
  doc.y = y + 10;
}
