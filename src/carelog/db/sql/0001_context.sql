-- Session context and shared triggers.
--
-- The application sets app.user_id / app.org_id with set_config(..., true) inside the same
-- transaction as its queries; these functions read them back for the policies. None of the
-- membership helpers takes a row argument, so PostgreSQL evaluates them once per statement
-- (a one-time filter), not once per row: RLS stays cheap on a million-row audit table.

CREATE SCHEMA app AUTHORIZATION {{owner}};
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO {{app}}, {{system}};

-- Empty and missing both mean "no identity": policies then match nothing but public rows.
CREATE FUNCTION app.current_user_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(pg_catalog.current_setting('app.user_id', true), '') $$;

-- A malformed org id raises (invalid input syntax for type uuid): the statement fails closed.
CREATE FUNCTION app.current_org_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(pg_catalog.current_setting('app.org_id', true), '')::uuid $$;

-- The caller's role in the current organization, only while the membership is active.
-- Runs with the caller's rights: user_org_memberships shows a user their own rows only.
CREATE FUNCTION app.current_org_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT m.role FROM public.user_org_memberships m
    WHERE m.org_id = app.current_org_id()
      AND m.workos_user_id = app.current_user_id()
      AND m.status = 'active'
$$;

CREATE FUNCTION app.is_member() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.current_org_role() IS NOT NULL $$;

CREATE FUNCTION app.is_org_admin() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(app.current_org_role() IN ('owner', 'admin'), false) $$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA app TO {{app}}, {{system}};

-- updated_at is the database's job, so raw SQL and bulk updates cannot leave it stale.
CREATE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE FUNCTION app.touch_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    NEW.updated := now();
    RETURN NEW;
END $$;

CREATE FUNCTION app.touch_last_modified_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog
AS $$
BEGIN
    NEW.last_modified_at := now();
    RETURN NEW;
END $$;
