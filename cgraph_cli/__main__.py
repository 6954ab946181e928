from cgraph_cli.cli.entry import console

if __name__ == "__main__":
    console()
