#!/usr/bin/env bash
# ctest: `cmake --install` into a temp prefix, then the installed tree on its own. The
# prefix is moved (the pkg-config file and m64c find their files relative to themselves),
# and the installed m64c builds a model with the checkout and its build tree hidden
# (a private mount namespace lays an empty folder over them; nothing real is deleted).
# Then the installed m64run and examples/stream.c, compiled against the installed libm64
# with pkg-config, give the greedy text the build tree's m64run gives.
set -euo pipefail
src="$1" bin="$2" shared="$3"
t="$(mktemp -d /tmp/m64install.XXXXXX)"
trap 'rm -rf "$t"' EXIT
export M64_LOCAL_KEY="$t/local.key" M64_TRUST_DIR="$t/trusted" XDG_CACHE_HOME="$t/cache"

cmake --install "$bin" --prefix "$t/p" >"$t/install.log"
mv "$t/p" "$t/moved"
p="$t/moved"
echo "install_test: installed tree (moved to $p):"
(cd "$p" && find . -type f -o -type l | sort | grep -v '^./share/m64/module/' ; \
 echo "./share/m64/module/: $(ls share/m64/module | wc -l) files")

# the model: stories260K when the shared models are there, else a synthetic one
if [ -f "$shared/stories260K.gguf" ]; then
  cp "$shared/stories260K.gguf" "$t/model.gguf"; prompt="Once upon a time"
else
  echo "install_test: $shared/stories260K.gguf absent: using a synthetic model"
  "$bin/test/support/m64-synth" --shape tiny --type Q8_0 --seed 5 -o "$t/model.gguf"; prompt="one two"
fi

# the installed m64c with the checkout (and so the build tree) out of reach
hide="$t/empty"; mkdir -p "$hide"
if unshare -rm true 2>/dev/null; then
  unshare -rm bash -c 'mount --bind "$1" "$2" && [ ! -e "$2/CMakeLists.txt" ] && shift 2 && exec "$@"' _ \
    "$hide" "$src" "$p/bin/m64c" build -v "$t/model.gguf" -o "$t/model.m64" >"$t/build.log" 2>&1 \
    || { cat "$t/build.log"; echo "install_test: FAIL: the installed m64c did not build the model"; exit 1; }
  echo "install_test: the installed m64c built the model with $src hidden"
else
  echo "install_test: no mount namespaces here: the checkout stays visible; checking the paths m64c used instead"
  "$p/bin/m64c" build -v "$t/model.gguf" -o "$t/model.m64" >"$t/build.log" 2>&1 || { cat "$t/build.log"; exit 1; }
fi
# every tool invocation used the installed files, none from the checkout
if grep -F -- "$src" "$t/build.log"; then echo "install_test: FAIL: m64c used the checkout"; exit 1; fi
grep -q -- "-I$p/bin/../share/m64/module" "$t/build.log" \
  || { cat "$t/build.log"; echo "install_test: FAIL: module sources not from the prefix"; exit 1; }
grep -q -- "$p/bin/../share/m64/toolchain/wasm2c" "$t/build.log" \
  || { echo "install_test: FAIL: wasm2c not from the prefix"; exit 1; }

# an override by environment variable wins and is named in the error when wrong
if M64_SOURCE_DIR="$t/nowhere" "$p/bin/m64c" build -q "$t/model.gguf" -o "$t/x.m64" 2>"$t/err.log"; then
  echo "install_test: FAIL: M64_SOURCE_DIR was ignored"; exit 1
fi
grep -q "module sources are not in $t/nowhere" "$t/err.log" || { cat "$t/err.log"; exit 1; }
[ ! -e "$t/x.m64" ]

# the installed m64run and the example against the installed libm64 (pkg-config, moved prefix)
"$p/bin/m64run" --version
want="$("$bin/cmd/m64run" "$t/model.m64" -p "$prompt" -n 32 --temp 0 -t 2 2>/dev/null)"
got="$("$p/bin/m64run" "$t/model.m64" -p "$prompt" -n 32 --temp 0 -t 2 2>/dev/null)"
[ "$got" = "$want" ] || { echo "install_test: FAIL: installed m64run: '$got' vs '$want'"; exit 1; }
export PKG_CONFIG_PATH="$p/lib/pkgconfig"
echo "install_test: pkg-config m64: $(pkg-config --modversion m64): $(pkg-config --cflags --libs m64)"
cc -std=c11 -Wall -Wextra -Werror "$src/examples/stream.c" -o "$t/stream" $(pkg-config --cflags --libs m64) \
   -Wl,-rpath,"$p/lib"
cc -std=c11 -Wall -Wextra -Werror "$src/examples/stream.c" -o "$t/stream-static" $(pkg-config --cflags m64) \
   "$p/lib/libm64.a" $(pkg-config --static --libs-only-l --libs-only-other m64 | sed 's/-lm64 //')
for ex in stream stream-static; do
  out="$("$t/$ex" "$t/model.m64" "$prompt")"
  # m64run echoes the prompt first; the example prints only what it generates
  [ "$prompt$out" = "$want" ] || { echo "install_test: FAIL: $ex printed '$out', m64run '$want'"; exit 1; }
done
libs="$(ldd "$t/stream")" # (not piped into grep -q: under pipefail, ldd's SIGPIPE would fail the test)
case "$libs" in *"$p/lib/libm64.so"*) ;; *) echo "install_test: FAIL: not linked to the installed libm64.so: $libs"; exit 1 ;; esac
echo "install_test: example output from the installed prefix: $out"
echo "install_test: ok"
