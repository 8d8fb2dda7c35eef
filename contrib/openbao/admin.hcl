# helperd team admins: publish, rotate and revoke the team's runtimes (DESIGN.md §10),
# with `helperctl team publish|list|revoke`, `bao kv put` or Terraform.
# Paths assume mount = "secret" and team_path = "helperd/runtimes" in [openbao].

path "secret/data/helperd/runtimes/*" {
  capabilities = ["create", "update", "read"]
}

# `helperctl team revoke` deletes an entry with every version (its metadata).
path "secret/metadata/helperd/runtimes/*" {
  capabilities = ["list", "read", "delete"]
}
path "secret/metadata/helperd/runtimes" {
  capabilities = ["list"]
}

# Deliberately nothing under helperd/users/: admins replace and revoke team tokens but
# cannot read a user's own secrets (HELPERD_STORE=openbao) unless another policy says so.
