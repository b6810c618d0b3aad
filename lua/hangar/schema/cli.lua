-- The CLI's configuration schema: ~/.config/hangar/cli.lua, or the file $HANGAR_CLI_CONFIG
-- names. Flags (--hub, --token-file, --ca-file) and HANGAR_HUB_URL, HANGAR_TOKEN and
-- HANGAR_CA_FILE override what the file says. For example:
--
--   hub_url = "https://hangar.example.com"
--   token_file = "~/.config/hangar/token"      -- relative paths start at this file's directory
--   environments = { staging = { hub_url = "https://hangar-staging.example.com" } }
return {
  hub_url = { type = "string", doc = "the hub, https://HOST[:PORT] (http:// only on loopback)" },
  token_file = {
    type = "string",
    doc = "a file holding the API key and nothing else; keep it readable by you alone",
  },
  token = {
    type = "string",
    doc = "the API key itself (prefer token_file, so that this file holds no secret)",
  },
  ca_file = { type = "string", doc = "PEM bundle of the CAs that sign the hub's certificate" },
  allow_http = {
    type = "boolean",
    default = false,
    doc = "allow plain http:// to a hub that is not on loopback (the key then travels in clear)",
  },
}
