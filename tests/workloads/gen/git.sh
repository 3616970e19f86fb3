# git (version control): a new repository in mktemp -d, one commit per file named in $@, a branch,
# then log and a diff summary.
set -eu
d=$(mktemp -d)
export HOME="$d" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
git init -q -b main "$d/repo"
cd "$d/repo"
git config user.email lp@example.org
git config user.name leastpriv
for f in "$@"; do echo "content of $f" > "$f.txt"; git add "$f.txt"; git commit -q -m "add $f"; done
git checkout -q -b topic
echo changed >> "$1.txt"
git commit -q -am "change $1"
git log --oneline main..topic | wc -l
git diff --stat main topic | tail -n 1
git rev-list --count HEAD
git status --short | wc -l
cd /
rm -rf "$d"
