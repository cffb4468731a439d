// Drive Latchkey with the official, unmodified Commerce Layer JS libraries:
// @commercelayer/provisioning-sdk and @commercelayer/js-auth, pinned in package.json next to this file.
//
// Environment:
//   LATCHKEY_URL              base URL of a running Latchkey, e.g. http://127.0.0.1:8080
//   LATCHKEY_TOKEN            an organization admin management token (lk_…)
//   LATCHKEY_ORGANIZATION_ID  that organization's id
//   LATCHKEY_CL_DOMAIN        the made-up Commerce Layer domain, e.g. latchkey.test; Latchkey must be
//                             started with LATCHKEY_PUBLIC_URL=https://auth.<domain> (see the iss step)
//
// The libraries hard-code https://provisioning.<domain>/api and https://auth.<domain>/oauth/…, and
// call the global fetch. The one adaptation: globalThis.fetch is wrapped so that those two origins
// go to LATCHKEY_URL; every other request is passed through untouched (and reported on failure).
//
// Steps: roles; create a sales channel and an integration; list them (filter, sort, include, pages)
// and count; update and retrieve; a token for each with authenticate(); jwtVerify() and jwtDecode()
// them; revoke() one and ask /v1/authenticate about both; delete a credential and see a 404.
// Prints one line per step; on failure prints the failing step and exits 1.

import { CommerceLayerProvisioning } from '@commercelayer/provisioning-sdk'
import { authenticate, getTokenType, jwtDecode, jwtVerify, revoke } from '@commercelayer/js-auth'

function env(name) {
  const value = process.env[name]
  if (!value) {
    console.error(`FAIL: environment variable ${name} is not set`)
    process.exit(2)
  }
  return value
}

const BASE = env('LATCHKEY_URL').replace(/\/+$/, '')
const TOKEN = env('LATCHKEY_TOKEN')
const ORG = env('LATCHKEY_ORGANIZATION_ID')
const DOMAIN = env('LATCHKEY_CL_DOMAIN')

// --- the fetch wrapper ------------------------------------------------------------------------
const realFetch = globalThis.fetch
const rewritten = new Set([`https://provisioning.${DOMAIN}`, `https://auth.${DOMAIN}`])
const passedThrough = []
globalThis.fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input))
  if (!rewritten.has(url.origin)) {
    passedThrough.push(url.href)
    return realFetch(input, init)
  }
  const target = `${BASE}${url.pathname}${url.search}`
  return input instanceof Request ? realFetch(new Request(target, input), init) : realFetch(target, init)
}

// --- helpers ----------------------------------------------------------------------------------
let STEP = 'start'
const step = (name) => { STEP = name }
const ok = (line) => console.log(`ok ${STEP}: ${line}`)
class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg)
}
const show = (v) => JSON.stringify(v, (k, x) => (k === 'client_secret' ? '<secret>' : x))

async function expectStatus(status, fn, what) {
  let result
  try {
    result = await fn()
  } catch (e) {
    check(e?.status === status, `${what}: expected an SDK error with status ${status}, got ${e?.name} ${e?.status}: ${e?.message} ${show(e?.errors)}`)
    return e
  }
  throw new Error(`${what}: expected status ${status}, but the call succeeded and returned ${show(result)}`)
}

async function verdict(accessToken) {
  const res = await realFetch(`${BASE}/v1/authenticate`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ authorization: accessToken }),
  })
  const body = await res.json().catch(() => null)
  check(res.status === 200 && body, `/v1/authenticate answered HTTP ${res.status}: ${show(body)}`)
  return body
}

function checkToken(auth, who, expiresIn) {
  check(auth.errors == null, `authenticate(${who}) returned errors: ${show(auth.errors)}`)
  check(typeof auth.accessToken === 'string' && auth.accessToken.split('.').length === 3, `authenticate(${who}): no JWT accessToken: ${show(auth)}`)
  check(auth.tokenType === 'bearer', `authenticate(${who}): tokenType ${show(auth.tokenType)}`)
  check(auth.expiresIn === expiresIn, `authenticate(${who}): expiresIn ${show(auth.expiresIn)}, expected ${expiresIn}`)
  check(auth.expires instanceof Date && Math.abs(auth.expires - Date.now() - expiresIn * 1000) < 60_000, `authenticate(${who}): expires ${auth.expires}`)
  check(auth.scope === 'market:all', `authenticate(${who}): scope ${show(auth.scope)}`)
  check(Number.isInteger(auth.createdAt), `authenticate(${who}): createdAt ${show(auth.createdAt)}`)
}

async function checkJwt(auth, who, credential, confidential) {
  const { header, payload } = jwtDecode(auth.accessToken)
  check(header.alg === 'RS512' && header.kid, `${who}: JWT header ${show(header)}, expected alg RS512 and a kid`)
  check(payload.iss === `https://auth.${DOMAIN}`,
    `${who}: iss is ${show(payload.iss)}; js-auth's jwtVerify and revoke only follow an iss that starts with ` +
    `"https://auth." (else they call https://auth.commercelayer.io; extractIssuer in src/utils/extractIssuer.ts), ` +
    `so Latchkey must run with LATCHKEY_PUBLIC_URL=https://auth.${DOMAIN}`)
  const verified = await jwtVerify(auth.accessToken)
  const p = verified.payload
  check(p.application?.kind === credential.kind && p.application?.id === credential.id && p.application?.client_id === credential.client_id,
    `${who}: application claim ${show(p.application)}`)
  check(p.application.confidential === confidential && p.application.public === !credential.confidential,
    `${who}: application.confidential/public ${show(p.application)}`)
  check(p.organization?.id === ORG, `${who}: organization claim ${show(p.organization)}, expected id ${ORG}`)
  check(p.scope === 'market:all' && p.exp - p.iat === auth.expiresIn, `${who}: scope/exp/iat ${show(p)}`)
  check(getTokenType(p) === `${credential.kind}:guest`, `${who}: getTokenType ${getTokenType(p)}`)
  return header.kid
}

// --- the check --------------------------------------------------------------------------------
async function run() {
  const cl = CommerceLayerProvisioning({ accessToken: TOKEN, domain: DOMAIN })

  step('1 roles')
  const roles = await cl.roles.list({ filters: { kind_eq: 'admin' } })
  check(roles.length === 1 && roles.recordCount === 1, `roles.list(kind_eq admin): ${show(roles)} meta ${show(roles.meta)}`)
  const adminRole = roles.first()
  check(adminRole.type === 'roles' && adminRole.kind === 'admin' && adminRole.id, `admin role: ${show(adminRole)}`)
  ok(`admin role ${adminRole.id} (${adminRole.name})`)

  step('1 create')
  const org = cl.organizations.relationship(ORG)
  const shop = await cl.api_credentials.create({ name: 'My app', kind: 'sales_channel', organization: org })
  check(shop.type === 'api_credentials' && shop.id && shop.kind === 'sales_channel' && shop.name === 'My app', `sales channel: ${show(shop)}`)
  check(shop.client_id && shop.client_secret, `sales channel: client_id and client_secret on create: ${show(shop)}`)
  check(shop.role == null, `sales channel has a role: ${show(shop.role)}`)
  const erp = await cl.api_credentials.create({ name: 'ERP', kind: 'integration', organization: org, role: cl.roles.relationship(adminRole.id) })
  check(erp.type === 'api_credentials' && erp.id && erp.kind === 'integration' && erp.confidential === true, `integration: ${show(erp)}`)
  check(erp.client_id && erp.client_secret, `integration: client_id and client_secret on create: ${show(erp)}`)
  ok(`sales channel ${shop.id} (client ${shop.client_id}), integration ${erp.id} (client ${erp.client_id})`)

  step('2 list')
  const query = (pageNumber) => ({
    filters: { kind_in: ['sales_channel', 'integration'] },
    sort: { created_at: 'desc' },
    include: ['organization', 'role'],
    pageSize: 1,
    pageNumber,
  })
  const page1 = await cl.api_credentials.list(query(1))
  const page2 = await cl.api_credentials.list(query(2))
  for (const [n, page] of [[1, page1], [2, page2]]) {
    check(page.length === 1, `page ${n}: ${page.length} records`)
    check(page.recordCount === 2 && page.pageCount === 2 && page.meta.currentPage === n, `page ${n}: meta ${show(page.meta)}`)
    const c = page.first()
    check(c.client_secret === undefined, `page ${n}: a listed credential carries its client_secret`)
    check(c.organization?.type === 'organizations' && c.organization.id === ORG && typeof c.organization.name === 'string',
      `page ${n}: included organization did not resolve to an object: ${show(c.organization)}`)
    if (c.kind === 'integration') {
      check(c.role?.type === 'roles' && c.role.id === adminRole.id && c.role.kind === 'admin', `page ${n}: included role did not resolve: ${show(c.role)}`)
    } else {
      check(c.role === null, `page ${n}: the sales channel's role is ${show(c.role)}, expected null`)
    }
  }
  check(page1.hasNextPage() && !page1.hasPrevPage() && page2.hasPrevPage() && !page2.hasNextPage(), 'hasNextPage/hasPrevPage')
  check(new Set([page1.first().id, page2.first().id]).size === 2 && [shop.id, erp.id].includes(page1.first().id) && [shop.id, erp.id].includes(page2.first().id),
    `pages hold ${page1.first().id} and ${page2.first().id}, expected ${shop.id} and ${erp.id}`)
  check(page1.first().created_at >= page2.first().created_at, 'sort created_at desc: page 1 is older than page 2')
  const total = await cl.api_credentials.count()
  const integrations = await cl.api_credentials.count({ kind_eq: 'integration' })
  check(total === 2 && integrations === 1, `count(): ${total}, count({kind_eq: integration}): ${integrations}`)
  ok(`2 records, 2 pages of 1, organization and role included; count ${total}, integrations ${integrations}`)

  step('3 update')
  const renamed = await cl.api_credentials.update({ id: shop.id, name: 'My shop' })
  check(renamed.id === shop.id && renamed.name === 'My shop' && renamed.kind === 'sales_channel', `update: ${show(renamed)}`)
  const got = await cl.api_credentials.retrieve(shop.id, { include: ['organization'] })
  check(got.name === 'My shop' && got.client_id === shop.client_id && got.client_secret === undefined, `retrieve: ${show(got)}`)
  check(got.organization?.id === ORG, `retrieve include organization: ${show(got.organization)}`)
  ok(`${shop.id} renamed to "${got.name}"`)

  step('4 authenticate')
  const shopAuth = await authenticate('client_credentials', { clientId: shop.client_id, domain: DOMAIN })
  checkToken(shopAuth, 'sales channel', 14400)
  const erpAuth = await authenticate('client_credentials', { clientId: erp.client_id, clientSecret: erp.client_secret, domain: DOMAIN })
  checkToken(erpAuth, 'integration', 7200)
  ok(`sales channel token (${shopAuth.expiresIn}s) without a secret, integration token (${erpAuth.expiresIn}s) with one`)

  step('5 jwtVerify')
  const kid = await checkJwt(shopAuth, 'sales channel', shop, false)
  await checkJwt(erpAuth, 'integration', erp, true)
  ok(`both RS512 tokens verify against https://auth.${DOMAIN}/.well-known/jwks.json (kid ${kid})`)

  step('6 revoke')
  const revoked = await revoke({ clientId: erp.client_id, clientSecret: erp.client_secret, token: erpAuth.accessToken })
  check(revoked && Object.keys(revoked).length === 0, `revoke answered ${show(revoked)}, expected {}`)
  const gone = await verdict(erpAuth.accessToken)
  check(gone.valid === false && gone.code === 'revoked', `/v1/authenticate of the revoked token: ${show(gone)}`)
  const live = await verdict(shopAuth.accessToken)
  check(live.valid === true, `/v1/authenticate of the other token: ${show(live)}`)
  ok('integration token revoked (valid:false, code revoked); sales channel token still valid')

  step('7 delete')
  await cl.api_credentials.delete(erp.id)
  const e = await expectStatus(404, () => cl.api_credentials.retrieve(erp.id), 'retrieve of the deleted credential')
  check(cl.isApiError(e), `the 404 is not an SDK ApiError: ${e?.name}`)
  check(await cl.api_credentials.count() === 1, 'the deleted credential is still counted')
  ok(`${erp.id} deleted; retrieve now fails with ${e.status} ${e.errors?.[0]?.code ?? ''}`.trimEnd())
}

try {
  await run()
  console.log(`OK @commercelayer/provisioning-sdk and @commercelayer/js-auth against ${BASE}`)
} catch (e) {
  const detail = e instanceof CheckError ? e.message
    : e?.status ? `${e.name} HTTP ${e.status} ${e.statusText ?? ''}: ${e.message} ${show(e.errors)}`
    : (e?.stack ?? String(e))
  console.error(`FAIL [${STEP}]: ${detail}`)
  if (passedThrough.length) console.error(`requests not sent to Latchkey: ${passedThrough.join(', ')}`)
  process.exit(1)
}
