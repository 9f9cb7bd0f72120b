fn main() {
    print!("{}", clusterscale::api::crd_yaml());
}
