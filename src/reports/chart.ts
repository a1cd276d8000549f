/**
 * The compliance chart (issue 17): device and patch-installation % over the last periods, and the report's missing
 * updates by age. Vega-Lite compiles the spec, Vega renders it to SVG headlessly, resvg rasterises it with the
 * DejaVu files only (no system fonts), so the same input gives the same PNG on any machine.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { AGE_BUCKETS } from '../domain/compliance.ts';
import type { ComplianceHistory } from '../domain/compliance-history.ts';
import { reportFonts, type ReportFonts } from './fonts.ts';

export interface ChartOptions {
  fonts?: ReportFonts;
  /** Pixels per SVG unit in the PNG (2 reads sharply in a PDF and on a retina screen). */
  scale?: number;
}

const MEASURES = [
  ['deviceCompliancePct', 'Device compliance %'],
  ['patchInstallationPct', 'Patch installation %'],
] as const;

export function complianceChartSpec(history: ComplianceHistory, family: string): TopLevelSpec {
  const line = history.points.flatMap((p) =>
    MEASURES.filter(([key]) => p[key] !== null).map(([key, label]) => ({ period: p.period, measure: label, pct: p[key] })),
  );
  const periods = history.points.map((p) => p.period);
  const ages = AGE_BUCKETS.map((bucket) => ({ bucket, missing: history.missingByAge[bucket] }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: family, view: { stroke: '#ddd' }, axis: { labelFontSize: 10, titleFontSize: 11 }, legend: { labelFontSize: 10, labelLimit: 0, orient: 'bottom', title: null } },
    background: 'white',
    padding: 8,
    hconcat: [
      {
        title: `Compliance, last ${periods.length} periods`,
        width: 320,
        height: 170,
        data: { values: line },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'period', type: 'ordinal', sort: periods, scale: { domain: periods }, title: null, axis: { labelAngle: -45 } },
          y: { field: 'pct', type: 'quantitative', scale: { domain: [0, 100] }, title: '%' },
          color: { field: 'measure', type: 'nominal', scale: { range: ['#2b6cb0', '#c05621'] } },
        },
      },
      {
        title: 'Missing updates by age',
        width: 210,
        height: 170,
        data: { values: ages },
        mark: { type: 'bar', color: '#c53030' },
        encoding: {
          x: { field: 'bucket', type: 'ordinal', sort: null, title: 'days since Patch Tuesday', axis: { labelAngle: 0 } },
          y: { field: 'missing', type: 'quantitative', title: 'missing', axis: { tickMinStep: 1 } },
        },
      },
    ],
  };
}

export async function renderComplianceChartSvg(history: ComplianceHistory, options: ChartOptions = {}): Promise<string> {
  const fonts = options.fonts ?? reportFonts();
  const view = new vega.View(vega.parse(compile(complianceChartSpec(history, fonts.family)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function renderComplianceChartPng(history: ComplianceHistory, options: ChartOptions = {}): Promise<Buffer> {
  const fonts = options.fonts ?? reportFonts();
  const svg = await renderComplianceChartSvg(history, { fonts });
  const resvg = new Resvg(svg, {
    font: { fontFiles: [fonts.regular, fonts.bold], loadSystemFonts: false, defaultFontFamily: fonts.family },
    fitTo: { mode: 'zoom', value: options.scale ?? 2 },
  });
  return resvg.render().asPng();
}
