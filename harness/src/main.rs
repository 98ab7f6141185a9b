use clap::Parser;

fn main() {
    let cli = kmatrix::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmatrix: cannot start the async runtime: {e}");
            std::process::exit(kmatrix::exit::INFRA);
        }
    };
    let code = match rt.block_on(kmatrix::cli::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmatrix: error: {e:#}");
            kmatrix::exit::code_of(&e)
        }
    };
    drop(rt);
    std::process::exit(code);
}
