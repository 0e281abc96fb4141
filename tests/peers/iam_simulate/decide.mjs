// Reads a JSON array of simulations on stdin; prints a JSON array of decisions ("Allowed", "ImplicitlyDenied",
// "ExplicitlyDenied", or "error: ..."), one per simulation, in order. Test-only peer (AGPL-3.0): never shipped.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const decisions = []
for (const simulation of simulations) {
  const result = await runSimulation(
    { serviceControlPolicies: [], resourceControlPolicies: [], identityPolicies: [], ...simulation },
    {}
  )
  decisions.push(result.resultType === 'error' ? `error: ${JSON.stringify(result.errors)}` : result.overallResult)
}
process.stdout.write(JSON.stringify(decisions))
