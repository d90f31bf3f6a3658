// gen.mjs SPEC OUT: openapi-typescript's types for SPEC, written to OUT, with the upload parts
// (format: binary) typed as Blob, as openapi-typescript's documentation does it (its CLI types every
// string as string). An app generating its own types copies this transform.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [spec, out] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const ast = await openapiTS(pathToFileURL(spec), {
  transform(schema) {
    if (schema.format === "binary") return BLOB;
  },
});
writeFileSync(out, astToString(ast));
