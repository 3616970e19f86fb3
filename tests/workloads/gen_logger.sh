# A program that keeps a log under its own mktemp -d directory (generalization tests).
# $1: what to log. With $2 = probe, it then tries what it never did while learned:
# append to a file of someone else's in /tmp, write in $HOME and in /etc.
d=$(mktemp -d)
mkdir "$d/logs"
echo "run $1" > "$d/logs/out.log"
echo "pid $$" >> "$d/logs/out.log"
head -n 1 "$d/logs/out.log"
rm -r "$d"
if [ "$2" = probe ]; then
    if [ ! -e "$3" ]; then echo "tmp-other: not there"
    elif (echo intruder >> "$3") 2>/dev/null; then echo "tmp-other: written"; else echo "tmp-other: denied"; fi
    if (echo x > "$HOME/lp-gen-probe") 2>/dev/null; then echo "home: written"; else echo "home: denied"; fi
    if (echo x > /etc/lp-gen-probe) 2>/dev/null; then echo "etc: written"; else echo "etc: denied"; fi
fi
exit 0
