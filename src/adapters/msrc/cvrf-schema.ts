/**
 * The parts of an MSRC CVRF v3 JSON document patchbay reads. Everything else is ignored. Arrays MSRC sometimes
 * leaves out default to empty; a value of the wrong type anywhere is an error that names its path, so a
 * changed or damaged document is refused rather than read half-right.
 */
import { z } from 'zod';

const text = z.object({ Value: z.string().optional() }).optional();
const list = <T extends z.ZodType>(item: T) => z.array(item).optional().default([]);
const ids = list(z.string());

const note = z.object({
  Title: z.string().optional(),
  Type: z.number(),
  Value: z.string().optional(),
});

const revision = z.object({
  Number: z.string(),
  Date: z.string(),
  Description: text,
});

const threat = z.object({
  Type: z.number(),
  Description: text,
  ProductID: ids,
});

const scoreSet = z.object({
  BaseScore: z.number().optional(),
  ProductID: ids,
});

const remediation = z.object({
  Type: z.number(),
  Description: text,
  URL: z.string().optional(),
  Supercedence: z.string().optional(),
  ProductID: ids,
  RestartRequired: z.object({ Value: z.string().optional() }).optional(),
  SubType: z.string().optional(),
  FixedBuild: z.string().optional(),
});

const vulnerability = z.object({
  CVE: z.string().regex(/^CVE-\d{4}-\d{4,}/, { message: 'expected a CVE id such as CVE-2024-21412' }),
  Title: text,
  Notes: list(note),
  ProductStatuses: list(z.object({ Type: z.number(), ProductID: ids })),
  Threats: list(threat),
  CVSSScoreSets: list(scoreSet),
  Remediations: list(remediation),
  RevisionHistory: list(revision),
});

type BranchNode = { Type?: number | undefined; Name?: string | undefined; Items?: BranchNode[] | undefined; ProductID?: string | undefined; Value?: string | undefined };
const branch: z.ZodType<BranchNode> = z.lazy(() =>
  z.object({
    Type: z.number().optional(),
    Name: z.string().optional(),
    ProductID: z.string().optional(),
    Value: z.string().optional(),
    Items: z.array(branch).optional(),
  }),
);

export const cvrfDocumentSchema = z.object({
  DocumentTitle: text,
  DocumentTracking: z.object({
    Identification: z.object({ ID: z.object({ Value: z.string().regex(/^\d{4}-[A-Z][a-z]{2}$/, { message: 'expected a release id such as 2024-Feb' }) }) }),
    RevisionHistory: list(revision),
    InitialReleaseDate: z.string(),
    CurrentReleaseDate: z.string(),
  }),
  ProductTree: z.object({
    Branch: list(branch),
    FullProductName: list(z.object({ ProductID: z.string(), Value: z.string() })),
  }),
  Vulnerability: z.array(vulnerability),
});

export type CvrfDocument = z.output<typeof cvrfDocumentSchema>;
export type CvrfVulnerability = CvrfDocument['Vulnerability'][number];
export type CvrfBranch = BranchNode;
