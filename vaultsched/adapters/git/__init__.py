"""Every git call vaultsched makes, and the commit that holds only vaultsched's bytes.

No other module builds a git command line: each command vaultsched runs is a named operation
in this package, so what keeps it safe (`--` and `--end-of-options` before values from the
vault, literal pathspecs, the config overrides every call gets) is kept and reviewed in one
place. Callers use `Git` (and `Edit`, `GitError`); inside, by concern:

- `plumbing`: running git, one call at a time per vault, patient with the person's
  `index.lock` and never removing it (`Plumbing`, `IndexLock`);
- `plan` and `commit`: a commit of vaultsched's edits applied again to what git holds, never
  carrying the person's uncommitted changes (`Planner`, `SafeCommit`);
- `sync`: fetch, push, a scratch worktree to rebase in, the conflicts it stops at (`GitSync`);
- `repo`: `Git`, the vault's repository as the rest of vaultsched knows it.
"""

from vaultsched.adapters.git.plan import Edit
from vaultsched.adapters.git.plumbing import GitError
from vaultsched.adapters.git.repo import Git

__all__ = ["Edit", "Git", "GitError"]
