# bash completion for heapspy. The commands and options come from heapspy's own --help, so they
# never fall behind the binary.

_heapspy() {
	local cur prev cmd
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[1]}
	local w
	for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
		# After --, the words are the launched program's: complete them as commands and files.
		[ "$w" = -- ] && { COMPREPLY=($(compgen -c -f -- "$cur")); return; }
	done
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$("$1" --help 2>/dev/null | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')" -- "$cur"))
		return
	fi
	case $prev in
	-p | --pid) COMPREPLY=($(compgen -W "$(pgrep -d ' ' .)" -- "$cur")); return ;;
	-o | --output | --json | --svg | --btf) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	COMPREPLY=($(compgen -W "$("$1" "$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u) --" -- "$cur"))
}
complete -F _heapspy heapspy
