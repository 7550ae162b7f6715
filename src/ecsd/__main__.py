from ecsd.cli import main

main()
