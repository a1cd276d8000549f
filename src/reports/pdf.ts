/**
 * A client's compliance report as a PDF (issue 17), made with pdfkit: the summary page with the chart, the device
 * and update tables, the evidence appendix. Pure given its input: the DejaVu fonts are embedded (subset) so it
 * opens the same in any viewer, and the creation date is the injected `now` (pdfkit would otherwise stamp the wall
 * clock, and derives the file ID from its info dictionary), so the same input gives the same bytes.
 */
import PDFDocument from 'pdfkit';
import type { EvidenceAppendix } from '../domain/compliance-evidence.ts';
import type { ComplianceHistory } from '../domain/compliance-history.ts';
import type { ComplianceReport } from '../domain/compliance.ts';
import { renderComplianceChartPng } from './chart.ts';
import { reportFonts, type ReportFonts } from './fonts.ts';
import { drawAppendix, drawDeviceTables, drawUpdateTable } from './pdf-sections.ts';
import { drawSummaryPage } from './pdf-summary.ts';
import type { TableStyle } from './pdf-table.ts';

type Doc = InstanceType<typeof PDFDocument>;

export interface PdfContext {
  history: ComplianceHistory;
  evidence: EvidenceAppendix;
  /** The report's creation date in the PDF's metadata. */
  now: Date;
  fonts?: ReportFonts;
  /** The chart, when the caller already rendered it (e.g. to post it as well); else rendered here. */
  chartPng?: Buffer;
}

const STYLE: TableStyle = { regular: 'Body', bold: 'Body-Bold', size: 7.5 };

export async function renderReportPdf(report: ComplianceReport, context: PdfContext): Promise<Buffer> {
  const fonts = context.fonts ?? reportFonts();
  const chart = context.chartPng ?? (await renderComplianceChartPng(context.history, { fonts }));
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: 40, bottom: 48, left: 40, right: 40 },
    bufferPages: true,
    displayTitle: true,
    lang: 'en',
    info: {
      Title: `Patch compliance ${report.client.name} ${report.period.id}`,
      Author: 'patchbay',
      Subject: `Patch compliance report of client ${report.client.id} for ${report.period.id}`,
      Creator: 'patchbay',
      Producer: 'patchbay (pdfkit)',
      CreationDate: context.now,
      ModDate: context.now,
    },
  });
  const done = collect(doc);
  doc.registerFont(STYLE.regular, fonts.regular);
  doc.registerFont(STYLE.bold, fonts.bold);
  doc.font(STYLE.regular);
  drawSummaryPage(doc, report, chart, STYLE);
  doc.addPage();
  drawDeviceTables(doc, report, STYLE);
  drawUpdateTable(doc, report, STYLE);
  drawAppendix(doc, report, context.evidence, STYLE);
  footers(doc, report);
  doc.end();
  return done;
}

function collect(doc: Doc): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
}

/** "page n of m" on every page, written once all pages exist; the bottom margin is lifted so pdfkit adds no page. */
function footers(doc: Doc, report: ComplianceReport): void {
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc.font(STYLE.regular).fontSize(7).fillColor('#718096');
    const text = `patchbay · ${report.client.id} · ${report.period.id} · page ${i + 1} of ${range.count}`;
    doc.text(text, doc.page.margins.left, doc.page.height - 30, { width: doc.page.width - doc.page.margins.left - doc.page.margins.right, align: 'center', lineBreak: false });
    doc.page.margins.bottom = bottom;
    doc.fillColor('black');
  }
}
