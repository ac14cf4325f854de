'use strict'

// `npm install` hook: builds the native addon when it is missing, so that
// `npm install ./sdk-node` works from another project on a fresh machine
// (with a Rust toolchain). Uses the napi CLI when installed, else cargo
// directly. Set TIDELOG_SKIP_BUILD=1 to skip.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const dir = path.resolve(__dirname, '..')

function loads() {
  try {
    require(path.join(dir, 'native.js'))
    return true
  } catch {
    return false
  }
}

function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report && process.report.getReport ? process.report.getReport() : null
    const glibc = report && report.header && report.header.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function run(cmd, args, env) {
  console.log(`tidelog: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: dir, stdio: 'inherit', env: { ...process.env, ...env } })
  if (r.error) throw r.error
  if (r.status !== 0) process.exit(r.status || 1)
}

if (process.env.TIDELOG_SKIP_BUILD || loads()) process.exit(0)

const napi = path.join(dir, 'node_modules', '.bin', process.platform === 'win32' ? 'napi.cmd' : 'napi')
if (fs.existsSync(napi)) {
  run(napi, ['build', '--platform', '--release', '--js', 'native.js', '--dts', 'native.d.ts'])
} else {
  // No dev dependencies (installed as a dependency): plain cargo, then copy
  // the library to the name the loader in native.js looks for.
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(dir, 'target')
  run('cargo', ['build', '--release', '--manifest-path', path.join(dir, 'Cargo.toml')], { CARGO_TARGET_DIR: targetDir })
  const lib = { darwin: 'libtidelog_node.dylib', win32: 'tidelog_node.dll' }[process.platform] || 'libtidelog_node.so'
  fs.copyFileSync(path.join(targetDir, 'release', lib), path.join(dir, `tidelog.${platformSuffix()}.node`))
}
if (!loads()) {
  console.error('tidelog: the native addon was built but does not load')
  process.exit(1)
}
