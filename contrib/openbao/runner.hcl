# helperd runners and developer machines: read the team's runtimes (DESIGN.md §10).
# Attach to the runners' AppRole / JWT roles (token_policies = "helperd-runner").
# Paths assume mount = "secret" and team_path = "helperd/runtimes" in [openbao].

# Read each runtime (KV v2 keeps data under <mount>/data/).
path "secret/data/helperd/runtimes/*" {
  capabilities = ["read"]
}

# List the runtimes (KV v2 lists under <mount>/metadata/).
path "secret/metadata/helperd/runtimes" {
  capabilities = ["list"]
}
path "secret/metadata/helperd/runtimes/*" {
  capabilities = ["list"]
}

# Nothing under helperd/users/: a runner never sees a user's own secrets.
