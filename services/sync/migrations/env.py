from servicekit.migrations import run_env
from sync.models import metadata

run_env(metadata)
