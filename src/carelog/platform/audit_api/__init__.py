"""HTTP endpoints over the audit core, for owners and admins of an organization."""
