
use builtin;
use str;

set edit:completion:arg-completer[bud] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'bud'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'bud'= {
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand build 'Build an image from a Dockerfile (the default command)'
            cand du 'Show the disk usage of the build cache'
            cand prune 'Remove build cache'
            cand debug 'Look inside a build: the LLB graph, the worker'
            cand completion 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bud;build'= {
            cand --add-host 'Add a custom host-to-IP mapping (host:ip)'
            cand --allow 'Allow extra privileged entitlement (network.host, security.insecure, device[=NAME[,alias=ALIAS]])'
            cand --annotation 'Add an annotation to the image (KEY=VALUE, or TYPE[PLATFORM]:KEY=VALUE with TYPE manifest or manifest-descriptor)'
            cand --attest 'Attestation parameters (type=provenance[,mode=min|max], type=sbom; disabled=true)'
            cand --build-arg 'Set build-time variables (KEY=VALUE, or KEY to take it from the environment)'
            cand --build-context 'Additional build contexts (NAME=DIR|https://URL|docker-image://REF)'
            cand --cache-from 'External cache sources (type=registry,ref=IMAGE, or IMAGE)'
            cand --cache-to 'Cache export destinations (type=inline|registry|local,...)'
            cand --call 'Evaluate the build another way: check, outline, targets (METHOD[,format=json])'
            cand -f 'Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)'
            cand --file 'Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)'
            cand --iidfile 'Write the image ID to the file'
            cand --label 'Set metadata for an image (KEY=VALUE)'
            cand --metadata-file 'Write build result metadata (image digest, config digest, names) to the file, as JSON'
            cand --network 'Networking mode for the RUN instructions (default, none, host)'
            cand --no-cache-filter 'Do not cache the named stages'
            cand -o 'Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)'
            cand --output 'Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)'
            cand --platform 'Set the target platform(s) of the build (os/arch[/variant])'
            cand --provenance 'Shorthand for --attest=type=provenance (true, false, or mode=min|max[,...])'
            cand --progress 'Set the type of progress output (auto, tty, plain, rawjson, quiet)'
            cand --sbom 'Shorthand for --attest=type=sbom (true, false, or attributes)'
            cand --secret 'Secret to expose to the build (id=ID[,src=PATH|env=VAR])'
            cand --shm-size 'Size of /dev/shm for RUN steps (e.g. 64m)'
            cand --ssh 'SSH agent socket or keys to expose to the build (default|ID[=SOCKET|KEY,...])'
            cand -t 'Name and optionally a tag in the ''name:tag'' format'
            cand --tag 'Name and optionally a tag in the ''name:tag'' format'
            cand --target 'Set the target build stage to build'
            cand --trace 'Write a Chrome trace (JSON, for chrome://tracing or Perfetto) of the build''s steps'
            cand --ulimit 'Ulimit options for RUN steps (NAME=SOFT[:HARD])'
            cand --rm 'Remove intermediate containers after a successful build (always the case with bud)'
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand --check 'Run the build checks only (shorthand for --call=check)'
            cand --explain 'After the build, list the steps that ran and why each was not cached (bud''s own solver only: BuildKit, with --addr, does not report it)'
            cand --load 'Load the result into Docker (shorthand for --output=type=docker)'
            cand --no-cache 'Do not use cache when building the image'
            cand --pull 'Always attempt to pull all referenced images'
            cand --push 'Push the result to a registry (shorthand for --output=type=registry)'
            cand -q 'Suppress the build output and print the image ID on success'
            cand --quiet 'Suppress the build output and print the image ID on success'
            cand --force-rm 'Always remove intermediate containers (always the case with bud)'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;du'= {
            cand --filter 'Filter records (type=..., until=DURATION, description~=TEXT)'
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -v 'Show every cache record'
            cand --verbose 'Show every cache record'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;prune'= {
            cand --keep-storage 'Keep this much storage (e.g. 10GB)'
            cand --filter 'Filter what is pruned (until=DURATION, type=...)'
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -a 'Remove all unused build cache, not just dangling entries'
            cand --all 'Remove all unused build cache, not just dangling entries'
            cand -f 'Do not prompt for confirmation'
            cand --force 'Do not prompt for confirmation'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;debug'= {
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand dump-llb 'Print the LLB graph a Dockerfile converts to'
            cand workers 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bud;debug;dump-llb'= {
            cand -f 'Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)'
            cand --file 'Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)'
            cand --target 'Set the target build stage'
            cand --build-arg 'Set build-time variables'
            cand --format 'Output format'
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand --dot 'Print a Graphviz graph (same as --format=dot)'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;debug;workers'= {
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;debug;help'= {
            cand dump-llb 'Print the LLB graph a Dockerfile converts to'
            cand workers 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bud;debug;help;dump-llb'= {
        }
        &'bud;debug;help;workers'= {
        }
        &'bud;debug;help;help'= {
        }
        &'bud;completion'= {
            cand --addr 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)'
            cand --tlscacert 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with'
            cand --tlscert 'With a tcp:// --addr: the client certificate'
            cand --tlskey 'With a tcp:// --addr: the client certificate''s key'
            cand --tlsservername 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]'
            cand --tlsdir 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)'
            cand --root 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]'
            cand -D 'Print debug logs (RUST_LOG gives finer control)'
            cand --debug 'Print debug logs (RUST_LOG gives finer control)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'bud;help'= {
            cand build 'Build an image from a Dockerfile (the default command)'
            cand du 'Show the disk usage of the build cache'
            cand prune 'Remove build cache'
            cand debug 'Look inside a build: the LLB graph, the worker'
            cand completion 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'bud;help;build'= {
        }
        &'bud;help;du'= {
        }
        &'bud;help;prune'= {
        }
        &'bud;help;debug'= {
            cand dump-llb 'Print the LLB graph a Dockerfile converts to'
            cand workers 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
        }
        &'bud;help;debug;dump-llb'= {
        }
        &'bud;help;debug;workers'= {
        }
        &'bud;help;completion'= {
        }
        &'bud;help;help'= {
        }
    ]
    $completions[$command]
}
