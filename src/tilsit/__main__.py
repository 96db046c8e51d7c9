from tilsit.cli import main

main()
