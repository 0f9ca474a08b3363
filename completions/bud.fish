# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bud_global_optspecs
    string join \n addr= tlscacert= tlscert= tlskey= tlsservername= tlsdir= root= D/debug h/help V/version
end

function __fish_bud_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bud_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bud_using_subcommand
    set -l cmd (__fish_bud_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bud -n "__fish_bud_needs_command" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_needs_command" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_needs_command" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_needs_command" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_needs_command" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_needs_command" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_needs_command" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_needs_command" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_needs_command" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_needs_command" -s V -l version -d 'Print version'
complete -c bud -n "__fish_bud_needs_command" -f -a "build" -d 'Build an image from a Dockerfile (the default command)'
complete -c bud -n "__fish_bud_needs_command" -f -a "du" -d 'Show the disk usage of the build cache'
complete -c bud -n "__fish_bud_needs_command" -f -a "prune" -d 'Remove build cache'
complete -c bud -n "__fish_bud_needs_command" -f -a "debug" -d 'Look inside a build: the LLB graph, the worker'
complete -c bud -n "__fish_bud_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c bud -n "__fish_bud_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bud -n "__fish_bud_using_subcommand build" -l add-host -d 'Add a custom host-to-IP mapping (host:ip)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l allow -d 'Allow extra privileged entitlement (network.host, security.insecure, device[=NAME[,alias=ALIAS]])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l annotation -d 'Add an annotation to the image (KEY=VALUE, or TYPE[PLATFORM]:KEY=VALUE with TYPE manifest or manifest-descriptor)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l attest -d 'Attestation parameters (type=provenance[,mode=min|max], type=sbom; disabled=true)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l build-arg -d 'Set build-time variables (KEY=VALUE, or KEY to take it from the environment)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l build-context -d 'Additional build contexts (NAME=DIR|https://URL|docker-image://REF)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l cache-from -d 'External cache sources (type=registry,ref=IMAGE, or IMAGE)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l cache-to -d 'Cache export destinations (type=inline|registry|local,...)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l call -d 'Evaluate the build another way: check, outline, targets (METHOD[,format=json])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -s f -l file -d 'Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l iidfile -d 'Write the image ID to the file' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l label -d 'Set metadata for an image (KEY=VALUE)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l metadata-file -d 'Write build result metadata (image digest, config digest, names) to the file, as JSON' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l network -d 'Networking mode for the RUN instructions (default, none, host)' -r -f -a "default\t''
none\t''
host\t''"
complete -c bud -n "__fish_bud_using_subcommand build" -l no-cache-filter -d 'Do not cache the named stages' -r
complete -c bud -n "__fish_bud_using_subcommand build" -s o -l output -d 'Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l platform -d 'Set the target platform(s) of the build (os/arch[/variant])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l provenance -d 'Shorthand for --attest=type=provenance (true, false, or mode=min|max[,...])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l progress -d 'Set the type of progress output (auto, tty, plain, rawjson, quiet)' -r -f -a "auto\t''
tty\t''
plain\t''
rawjson\t''
quiet\t''"
complete -c bud -n "__fish_bud_using_subcommand build" -l sbom -d 'Shorthand for --attest=type=sbom (true, false, or attributes)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l secret -d 'Secret to expose to the build (id=ID[,src=PATH|env=VAR])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l shm-size -d 'Size of /dev/shm for RUN steps (e.g. 64m)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l ssh -d 'SSH agent socket or keys to expose to the build (default|ID[=SOCKET|KEY,...])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -s t -l tag -d 'Name and optionally a tag in the \'name:tag\' format' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l target -d 'Set the target build stage to build' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l trace -d 'Write a Chrome trace (JSON, for chrome://tracing or Perfetto) of the build\'s steps' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l ulimit -d 'Ulimit options for RUN steps (NAME=SOFT[:HARD])' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l rm -d 'Remove intermediate containers after a successful build (always the case with bud)' -r -f -a "true\t''
false\t''"
complete -c bud -n "__fish_bud_using_subcommand build" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand build" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand build" -l check -d 'Run the build checks only (shorthand for --call=check)'
complete -c bud -n "__fish_bud_using_subcommand build" -l explain -d 'After the build, list the steps that ran and why each was not cached (bud\'s own solver only: BuildKit, with --addr, does not report it)'
complete -c bud -n "__fish_bud_using_subcommand build" -l load -d 'Load the result into Docker (shorthand for --output=type=docker)'
complete -c bud -n "__fish_bud_using_subcommand build" -l no-cache -d 'Do not use cache when building the image'
complete -c bud -n "__fish_bud_using_subcommand build" -l pull -d 'Always attempt to pull all referenced images'
complete -c bud -n "__fish_bud_using_subcommand build" -l push -d 'Push the result to a registry (shorthand for --output=type=registry)'
complete -c bud -n "__fish_bud_using_subcommand build" -s q -l quiet -d 'Suppress the build output and print the image ID on success'
complete -c bud -n "__fish_bud_using_subcommand build" -l force-rm -d 'Always remove intermediate containers (always the case with bud)'
complete -c bud -n "__fish_bud_using_subcommand build" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand build" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand du" -l filter -d 'Filter records (type=..., until=DURATION, description~=TEXT)' -r
complete -c bud -n "__fish_bud_using_subcommand du" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand du" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand du" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand du" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand du" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand du" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand du" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand du" -s v -l verbose -d 'Show every cache record'
complete -c bud -n "__fish_bud_using_subcommand du" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand du" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand prune" -l keep-storage -d 'Keep this much storage (e.g. 10GB)' -r
complete -c bud -n "__fish_bud_using_subcommand prune" -l filter -d 'Filter what is pruned (until=DURATION, type=...)' -r
complete -c bud -n "__fish_bud_using_subcommand prune" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand prune" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand prune" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand prune" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand prune" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand prune" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand prune" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand prune" -s a -l all -d 'Remove all unused build cache, not just dangling entries'
complete -c bud -n "__fish_bud_using_subcommand prune" -s f -l force -d 'Do not prompt for confirmation'
complete -c bud -n "__fish_bud_using_subcommand prune" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand prune" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -f -a "dump-llb" -d 'Print the LLB graph a Dockerfile converts to'
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -f -a "workers" -d 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
complete -c bud -n "__fish_bud_using_subcommand debug; and not __fish_seen_subcommand_from dump-llb workers help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -s f -l file -d 'Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l target -d 'Set the target build stage' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l build-arg -d 'Set build-time variables' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l format -d 'Output format' -r -f -a "json\t''
dot\t''
pb\t''"
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -l dot -d 'Print a Graphviz graph (same as --format=dot)'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from dump-llb" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from workers" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from help" -f -a "dump-llb" -d 'Print the LLB graph a Dockerfile converts to'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from help" -f -a "workers" -d 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
complete -c bud -n "__fish_bud_using_subcommand debug; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bud -n "__fish_bud_using_subcommand completion" -l addr -d 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)' -r
complete -c bud -n "__fish_bud_using_subcommand completion" -l tlscacert -d 'With a tcp:// --addr: the CA certificate the daemon\'s certificate is verified with' -r -F
complete -c bud -n "__fish_bud_using_subcommand completion" -l tlscert -d 'With a tcp:// --addr: the client certificate' -r -F
complete -c bud -n "__fish_bud_using_subcommand completion" -l tlskey -d 'With a tcp:// --addr: the client certificate\'s key' -r -F
complete -c bud -n "__fish_bud_using_subcommand completion" -l tlsservername -d 'With a tcp:// --addr: the name the daemon\'s certificate must carry [default: the host]' -r
complete -c bud -n "__fish_bud_using_subcommand completion" -l tlsdir -d 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)' -r -F
complete -c bud -n "__fish_bud_using_subcommand completion" -l root -d 'Directory of bud\'s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]' -r -F
complete -c bud -n "__fish_bud_using_subcommand completion" -s D -l debug -d 'Print debug logs (RUST_LOG gives finer control)'
complete -c bud -n "__fish_bud_using_subcommand completion" -s h -l help -d 'Print help'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "build" -d 'Build an image from a Dockerfile (the default command)'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "du" -d 'Show the disk usage of the build cache'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "prune" -d 'Remove build cache'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "debug" -d 'Look inside a build: the LLB graph, the worker'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "completion" -d 'Print a shell completion script'
complete -c bud -n "__fish_bud_using_subcommand help; and not __fish_seen_subcommand_from build du prune debug completion help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bud -n "__fish_bud_using_subcommand help; and __fish_seen_subcommand_from debug" -f -a "dump-llb" -d 'Print the LLB graph a Dockerfile converts to'
complete -c bud -n "__fish_bud_using_subcommand help; and __fish_seen_subcommand_from debug" -f -a "workers" -d 'Show the worker: platforms, runtime, snapshotter, state root, GC policy'
