#!/usr/bin/env node
// Validates HAR files: first against the HAR 1.2 JSON schema (npm package
// `har-validator`), then against the rules of the HAR 1.2 spec that the
// schema does not enforce (its `min` keywords are not JSON Schema, so
// negative timings would pass it).
//
// Usage: node tests/har/validate.js FILE...
// Exit status: 0 when every file is valid, 1 when one is not (the reasons
// are printed to stderr, one per line), 2 on a usage or setup error.
'use strict'

const fs = require('fs')
const path = require('path')

let validator
try {
  validator = require(path.join(__dirname, 'node_modules', 'har-validator'))
} catch (err) {
  console.error(`har-validator is not installed (${err.message}); run: npm ci --prefix tests/har`)
  process.exit(2)
}

// Spec rules beyond the schema. Returns a list of problems (empty: fine).
function specProblems (har) {
  const problems = []
  const log = har && har.log
  if (!log || typeof log !== 'object') return ['log is missing']
  if (log.version !== '1.2') problems.push(`log.version is ${JSON.stringify(log.version)}, expected "1.2"`)
  const pageIds = new Set()
  for (const [i, page] of (log.pages || []).entries()) {
    if (pageIds.has(page.id)) problems.push(`pages[${i}].id ${JSON.stringify(page.id)} is not unique`)
    pageIds.add(page.id)
  }
  for (const [i, entry] of (log.entries || []).entries()) {
    const at = `entries[${i}]`
    if (typeof entry.time !== 'number' || entry.time < 0) problems.push(`${at}.time must be a number >= 0`)
    if (entry.pageref !== undefined && !pageIds.has(entry.pageref)) {
      problems.push(`${at}.pageref ${JSON.stringify(entry.pageref)} names no page`)
    }
    const t = entry.timings || {}
    for (const name of ['send', 'wait', 'receive']) {
      if (typeof t[name] !== 'number' || t[name] < 0) problems.push(`${at}.timings.${name} must be a number >= 0`)
    }
    for (const name of ['blocked', 'dns', 'connect', 'ssl']) {
      if (t[name] !== undefined && (typeof t[name] !== 'number' || t[name] < -1)) {
        problems.push(`${at}.timings.${name} must be -1 or a number >= 0`)
      }
    }
    const content = entry.response && entry.response.content
    if (content && content.encoding !== undefined && content.encoding !== 'base64') {
      problems.push(`${at}.response.content.encoding is ${JSON.stringify(content.encoding)}`)
    }
  }
  return problems
}

async function check (file) {
  let har
  try {
    har = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    return [`cannot read or parse: ${err.message}`]
  }
  const problems = []
  try {
    await validator.har(har)
  } catch (err) {
    for (const e of err.errors || [{ message: err.message }]) {
      problems.push(`schema: ${e.dataPath || '(root)'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`)
    }
  }
  return problems.concat(specProblems(har))
}

async function main () {
  const files = process.argv.slice(2)
  if (files.length === 0) {
    console.error('usage: node tests/har/validate.js FILE...')
    process.exit(2)
  }
  let failed = false
  for (const file of files) {
    const problems = await check(file)
    if (problems.length > 0) {
      failed = true
      for (const p of problems) console.error(`${file}: ${p}`)
    } else {
      console.log(`${file}: valid HAR 1.2`)
    }
  }
  process.exit(failed ? 1 : 0)
}

main()
