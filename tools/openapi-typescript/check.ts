// check.ts: what an app compiled against the generated types (vidgen.d.ts) relies on; tsc --strict
// must accept it, each @ts-expect-error line included (an error that goes away fails too).
import type { paths, components } from "./vidgen";

type Submit = paths["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"];

const image: Blob = new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: "image/jpeg" });
const ok: Submit = { image, audio: new Blob([]), captions: new Blob([]), size: "portrait", background: "#0A0B0C" };
// @ts-expect-error the image is a file, not a string
const notAString: Submit = { image: "portrait.jpg", audio: new Blob([]) };
// @ts-expect-error an input's URL is a string, not a file
const urlAsFile: Submit = { image, audioUrl: new Blob([]) };
// @ts-expect-error sizes are an enum
const badSize: Submit = { image, audio: image, size: "huge" };

const form = new FormData();
for (const [name, value] of Object.entries(ok)) {
  if (value !== undefined) form.append(name, value);
}

type Created = paths["/api/jobs"]["post"]["responses"][201]["content"]["application/json"];
const created: Created = { jobId: "c0mx1lgwgsnrq4avl98w5fi6x", message: "Job created" };
type State = components["schemas"]["JobState"];
const status: State = "COMPLETED";
export { ok, notAString, urlAsFile, badSize, form, created, status };
