"""Preferences take the apps' value types: `font_size` an integer (big-AGI), `center_mode`
text (big-AGI's narrow|wide|full). The defaults change to the apps' own, so the users who
already exist keep what they saw: the old defaults are stored where they never chose."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # old defaults under what was chosen (jsonb `||`: the right side wins)
    op.execute("""UPDATE preferences SET "values" = jsonb_build_object(
                      'theme_dark_mode', false, 'chat_persona', '', 'preferred_language', 'en')
                  || "values" """)
    op.execute("""UPDATE preferences SET "values" = jsonb_set("values", '{font_size}',
                      CASE "values"->>'font_size' WHEN 'small' THEN '12' WHEN 'large' THEN '18'
                      ELSE '14' END::jsonb)
                  WHERE jsonb_typeof("values"->'font_size') = 'string'""")
    # the old flag meant "centre a narrow column"; off was the full width
    op.execute("""UPDATE preferences SET "values" = jsonb_set("values", '{center_mode}',
                      CASE WHEN ("values"->'center_mode')::boolean THEN '"narrow"'
                      ELSE '"full"' END::jsonb)
                  WHERE jsonb_typeof("values"->'center_mode') = 'boolean'""")
