'use strict'

// Starts a real `tidelog serve` on free loopback ports for the tests.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function brokerBinary() {
  if (process.env.TIDELOG_BIN) return process.env.TIDELOG_BIN
  return path.resolve(__dirname, '..', '..', 'target', 'debug', 'tidelog')
}

function ready(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => {
      req.destroy()
      resolve(false)
    })
  })
}

// The binary is shared with other builds and may be replaced mid-build:
// wait for it to appear and retry a start that fails.
async function startBroker() {
  const bin = brokerBinary()
  const deadline = Date.now() + 120000
  while (!fs.existsSync(bin)) {
    if (Date.now() > deadline) {
      throw new Error(`broker binary ${bin} not found: run \`cargo build --workspace --bins\` or set TIDELOG_BIN`)
    }
    await new Promise((r) => setTimeout(r, 1000))
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin)
    } catch (e) {
      if (attempt >= 3) throw e
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
}

async function startOnce(bin) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidelog-node-test-'))
  const grpc = await freePort()
  const httpPort = await freePort()
  const child = spawn(
    bin,
    ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${grpc}`, '--http-listen', `127.0.0.1:${httpPort}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  // Never leave a broker behind, even if the process exits abruptly.
  const killOnExit = () => {
    child.kill('SIGKILL')
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
  process.once('exit', killOnExit)
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000)
  })
  let exited = false
  child.on('exit', () => {
    exited = true
  })
  child.on('error', (e) => {
    exited = true
    stderr += String(e)
  })
  const deadline = Date.now() + 30000
  while (!(await ready(httpPort))) {
    if (exited) {
      process.removeListener('exit', killOnExit)
      throw new Error(`broker exited during startup:\n${stderr}`)
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`broker not ready within 30 s:\n${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    address: `127.0.0.1:${grpc}`,
    async stop() {
      if (!exited) {
        const gone = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), 10000)
        await gone
        clearTimeout(t)
      }
      process.removeListener('exit', killOnExit)
      fs.rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

module.exports = { startBroker, freePort }
