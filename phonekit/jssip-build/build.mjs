// Bundles JsSIP 3.3.6 (its ES5 build) and its dependencies into one minified IIFE that sets
// window.JsSIP, as the seed's jssip-3.3.6.min.js does, and gathers the licences.
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';

const out = '../js/jssip-3.3.6.min.js';
await build({
  stdin: { contents: "window.JsSIP = require('jssip/lib-es5/JsSIP.js');", resolveDir: '.' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2017'],
  legalComments: 'none',
  banner: { js: '/*! JsSIP v3.3.6 | (c) José Luis Millán, Iñaki Baz Castillo | MIT; bundled with debug, ms, events, sdp-transform (MIT) | licences: PhoneKit/LICENSES.txt */' },
  outfile: out,
});
const packages = ['jssip', 'debug', 'ms', 'events', 'sdp-transform'];
let licences = 'Third-party code in PhoneKit/js/jssip-3.3.6.min.js (from the npm registry):\n';
for (const name of packages) {
  const pkg = JSON.parse(readFileSync(`node_modules/${name}/package.json`, 'utf8'));
  const file = ['LICENSE', 'LICENSE.md', 'license', 'LICENSE.txt']
    .map((f) => `node_modules/${name}/${f}`)
    .find((f) => { try { readFileSync(f); return true; } catch { return false; } });
  licences += `\n==== ${name} ${pkg.version} (${pkg.license}) ====\n\n`;
  licences += file ? readFileSync(file, 'utf8') : `${pkg.license}\n`;
}
writeFileSync('../LICENSES.txt', licences);
console.log(`wrote ${out}`);
