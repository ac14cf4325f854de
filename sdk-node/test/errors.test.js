'use strict'

// The JavaScript error classes against the Rust client's code table: no
// class for a code that does not exist, and `retriable` exactly as Rust says.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')

const { CODES, BINDING_CODES, CLASSES } = require('../lib/errors.js')
const { TidelogError } = require('..')

describe('error codes', () => {
  it('maps only codes the Rust client or this binding defines', () => {
    for (const code of Object.keys(CLASSES)) {
      assert.ok(CODES.has(code) || BINDING_CODES.includes(code), `unknown code ${code}`)
    }
    for (const code of BINDING_CODES) assert.ok(!CODES.has(code), `${code} is defined twice`)
  })

  it('takes retriable from the Rust table', () => {
    assert.ok(CODES.size > 20)
    for (const [code, retriable] of CODES) {
      assert.equal(new TidelogError('m', code).retriable, retriable, code)
    }
    assert.equal(new TidelogError('m', 'CONNECTION_ERROR').retriable, true)
    assert.equal(new TidelogError('m', 'DATA_LOSS').retriable, false)
    assert.equal(new TidelogError('m', 'INVALID_ARGUMENT').retriable, false)
  })
})
