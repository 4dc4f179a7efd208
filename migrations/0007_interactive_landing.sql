-- Interactive-mode landing servers (issue 7): the client commands typed at their shell to
-- reach the next hop. Empty: the gateway's defaults (gateway/src/interactive_hop.rs).
ALTER TABLE landing_servers ADD COLUMN ssh_command TEXT NOT NULL DEFAULT '';
ALTER TABLE landing_servers ADD COLUMN telnet_command TEXT NOT NULL DEFAULT '';
